"""Capital-market bhavcopy: each security's prices and volume for one trade date.

NSE published it as `cmDDMMMYYYYbhav.csv` ("legacy") until 2024-07-05, and in the UDiFF layout
(`BhavCopy_NSE_CM_0_0_0_YYYYMMDD_F_0000.csv`) from 2024-07-08, back-filled to 2024-01-01. The
parser tells the two apart by their header, since a file's name need not say which one it holds.

A header that drifts from its layout (`_csv.check_layout`) is refused when a column we read is
missing or renamed, and read with a warning when it only adds a column. Two rows of one symbol
and series are refused, naming both lines: loading both would double-count the day.
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from include.nse.errors import ParseError
from include.nse.sources._csv import (
    UDIFF_LAYOUT,
    bhavcopy_paths,
    check_layout,
    open_csv,
    read_columns,
    require_unique,
    single_date,
)
from include.nse.sources.base import Column, DailyFile, Dataset
from include.nse.sources.checks import (
    CM_SERIES,
    ISIN_REGEX,
    WARNING,
    matches,
    non_negative,
    not_null,
    one_of,
    positive,
    price_range,
    rows_like_previous_day,
)

COLUMNS = (
    Column("trade_date", pl.Date, "Date", "Trading day the prices are for."),
    Column("symbol", pl.String, "String", "NSE trading symbol."),
    Column("series", pl.String, "String", "Series the security trades in: EQ, BE, SM, N1..."),
    Column("isin", pl.String, "Nullable(String)", "ISIN; legacy files before about 2011 lack it."),
    Column("open", pl.Float64, "Nullable(Float64)", "Opening price, rupees."),
    Column("high", pl.Float64, "Nullable(Float64)", "Highest traded price, rupees."),
    Column("low", pl.Float64, "Nullable(Float64)", "Lowest traded price, rupees."),
    Column("close", pl.Float64, "Nullable(Float64)", "Official closing price, rupees."),
    Column("last_price", pl.Float64, "Nullable(Float64)", "Last traded price, rupees."),
    Column(
        "prev_close",
        pl.Float64,
        "Nullable(Float64)",
        "Previous trading day's closing price, rupees.",
    ),
    Column("volume", pl.UInt64, "Nullable(UInt64)", "Shares traded."),
    Column("turnover", pl.Float64, "Nullable(Float64)", "Value traded, rupees."),
    Column(
        "trades",
        pl.UInt64,
        "Nullable(UInt64)",
        "Number of trades; legacy files before about 2011 lack it.",
    ),
    Column("source_format", pl.String, "String", "Layout the row was read from: legacy or udiff."),
)

#: silver column -> file column, for the columns every layout has.
_LEGACY = {
    "trade_date": "TIMESTAMP",
    "symbol": "SYMBOL",
    "series": "SERIES",
    "open": "OPEN",
    "high": "HIGH",
    "low": "LOW",
    "close": "CLOSE",
    "last_price": "LAST",
    "prev_close": "PREVCLOSE",
    "volume": "TOTTRDQTY",
    "turnover": "TOTTRDVAL",
}
#: Added to the legacy file around 2011.
_LEGACY_LATER = {"trades": "TOTALTRADES", "isin": "ISIN"}
_LEGACY_LAYOUT = [*_LEGACY.values(), *_LEGACY_LATER.values()]
_UDIFF = {
    "trade_date": "TradDt",
    "symbol": "TckrSymb",
    "series": "SctySrs",
    "isin": "ISIN",
    "open": "OpnPric",
    "high": "HghPric",
    "low": "LwPric",
    "close": "ClsPric",
    "last_price": "LastPric",
    "prev_close": "PrvsClsgPric",
    "volume": "TtlTradgVol",
    "turnover": "TtlTrfVal",
    "trades": "TtlNbOfTxsExctd",
}

KEY = ("trade_date", "symbol", "series")

#: What a sound day looks like. NSE prints LAST 0 for some thinly traded series (IL, IT, NT), so
#: the last price is only required to be non-negative. A blank number is null in silver: the
#: close must be there (every listed series has one); the rest may be blank for a series that
#: did not trade, and a blank is recorded as a warning.
CHECKS = (
    *not_null("close"),
    *not_null(
        "open", "high", "low", "last_price", "prev_close", "volume", "turnover", severity=WARNING
    ),
    *price_range(),
    *positive("open", "high", "low", "close", "prev_close"),
    *non_negative("last_price", "volume", "turnover", "trades"),
    matches("isin", ISIN_REGEX),
    one_of("series", CM_SERIES, WARNING),
    *rows_like_previous_day(),
)


def remote_paths(trade_date: dt.date) -> list[str]:
    return bhavcopy_paths(trade_date, "CM", "EQUITIES")


def parse(raw: bytes, file_name: str) -> pl.DataFrame:
    """Either layout, zipped or plain, to silver; the header decides which layout it is."""
    opened = open_csv(raw, file_name)
    names = opened.names
    if "TckrSymb" in names:
        source_format, source = "udiff", _UDIFF
        check_layout(names, file_name, "UDiFF", UDIFF_LAYOUT, [*_UDIFF.values(), "Sgmt"])
    elif "SYMBOL" in names:
        source_format = "legacy"
        check_layout(
            names,
            file_name,
            "legacy CM",
            _LEGACY_LAYOUT,
            _LEGACY_LAYOUT,
            optional=_LEGACY_LATER.values(),
        )
        source = _LEGACY | {k: v for k, v in _LEGACY_LATER.items() if v in names}
    else:
        raise ParseError(
            file_name,
            "expected a legacy (SYMBOL,SERIES,...) or UDiFF (TradDt,...,TckrSymb,...) bhavcopy "
            f"header, found {','.join(names)}",
            line=1,
        )
    # The other segment's UDiFF file has the same header: only the segment tells them apart.
    segment = {"Sgmt": "CM"} if source_format == "udiff" else {}
    silver = read_columns(opened, COLUMNS, source, require=segment)
    single_date(silver, file_name, "trade_date", file_column=source["trade_date"])
    missing = [c.name for c in COLUMNS if c.name not in silver.columns and c.nullable]
    silver = silver.with_columns(
        *(pl.lit(None).alias(name) for name in missing),
        source_format=pl.lit(source_format),
    )
    require_unique(silver, file_name, KEY)
    return DATASET.conform(silver)


DATASET = Dataset(
    name="cm_bhavcopy",
    table="cm_bhavcopy",
    columns=COLUMNS,
    key=KEY,
    parse=parse,
    publication=DailyFile(remote_paths),
    doc=__doc__,
    checks=CHECKS,
)
