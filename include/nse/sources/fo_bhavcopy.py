"""F&O bhavcopy: every futures and options contract's prices, volume and open interest for a day.

NSE published it as `foDDMMMYYYYbhav.csv` ("legacy") until 2024-07-05, and in the UDiFF layout
(`BhavCopy_NSE_FO_0_0_0_YYYYMMDD_F_0000.csv`, the CM UDiFF header with segment FO) from
2024-07-08, back-filled to 2024-01-01. The header decides which layout a file holds.

The two layouts say "no such value" differently: legacy prints strike 0 and option type XX on
futures, UDiFF leaves them blank; both print 0 for the open, high and low of a contract that did
not trade, and legacy prints 0 where an option has no settlement price. Silver holds null for all
of these, so a 0 never passes for a price. Both count volume in contracts and open interest in
units of the underlying (checked against the lot size in real files of both eras), so the
numbers mean the same whichever layout they came from.
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from include.nse.errors import ParseError
from include.nse.sources._csv import (
    LAKH,
    UDIFF_LAYOUT,
    bhavcopy_paths,
    check_layout,
    open_csv,
    read_columns,
    refuse_rows,
    require_unique,
    single_date,
)
from include.nse.sources.base import Column, DailyFile, Dataset
from include.nse.sources.checks import (
    WARNING,
    at_most,
    non_negative,
    not_null,
    one_of,
    positive,
    price_range,
    rows_like_previous_day,
)

FUTURES = ("FUTIDX", "FUTSTK")
OPTIONS = ("OPTIDX", "OPTSTK")
#: UDiFF's FinInstrmTp -> the instrument as legacy files (and silver) name it.
UDIFF_INSTRUMENTS = {"IDF": "FUTIDX", "STF": "FUTSTK", "IDO": "OPTIDX", "STO": "OPTSTK"}

COLUMNS = (
    Column("trade_date", pl.Date, "Date", "Trading day the prices are for."),
    Column(
        "instrument",
        pl.String,
        "String",
        "FUTIDX, FUTSTK (index and stock futures), OPTIDX or OPTSTK (index and stock options).",
    ),
    Column("symbol", pl.String, "String", "Underlying: an index (NIFTY, BANKNIFTY...) or a stock."),
    Column("expiry_date", pl.Date, "Date", "Day the contract expires."),
    Column(
        "strike_price",
        pl.Float64,
        "Nullable(Float64)",
        "Strike, rupees; null for futures (legacy prints 0, UDiFF nothing).",
    ),
    Column(
        "option_type",
        pl.String,
        "Nullable(String)",
        "CE (call) or PE (put); null for futures (legacy prints XX, UDiFF nothing).",
    ),
    Column(
        "open",
        pl.Float64,
        "Nullable(Float64)",
        "Opening price, rupees; null where NSE prints 0 (nothing traded).",
    ),
    Column(
        "high",
        pl.Float64,
        "Nullable(Float64)",
        "Highest traded price, rupees; null where NSE prints 0.",
    ),
    Column(
        "low",
        pl.Float64,
        "Nullable(Float64)",
        "Lowest traded price, rupees; null where NSE prints 0.",
    ),
    Column(
        "close",
        pl.Float64,
        "Nullable(Float64)",
        "Closing price, rupees; for a contract that did not trade, NSE's carried-forward close.",
    ),
    Column(
        "settle_price",
        pl.Float64,
        "Nullable(Float64)",
        "Settlement price, rupees; null where legacy prints 0 (some options have none).",
    ),
    Column(
        "open_interest",
        pl.Int64,
        "Nullable(Int64)",
        "Open positions at the close, in units of the underlying (lots x lot size), not contracts.",
    ),
    Column(
        "change_in_oi",
        pl.Int64,
        "Nullable(Int64)",
        "Change in open interest since the previous trade date, in units of the underlying.",
    ),
    Column(
        "contracts",
        pl.UInt64,
        "Nullable(UInt64)",
        "Contracts (lots) traded: legacy CONTRACTS, and UDiFF TtlTradgVol, which also counts "
        "contracts despite its name (its turnover is TtlTradgVol x lot size x price).",
    ),
    Column(
        "turnover",
        pl.Float64,
        "Nullable(Float64)",
        "Value traded, rupees; legacy VAL_INLAKH x 100000, which NSE cut (not rounded) to "
        "1,000 rupees. For options NSE counts notional value: (strike + premium) x quantity.",
    ),
    Column("trades", pl.UInt64, "Nullable(UInt64)", "Number of trades; UDiFF files only."),
    Column(
        "underlying_price",
        pl.Float64,
        "Nullable(Float64)",
        "Underlying's price NSE used for the day, rupees; UDiFF files only.",
    ),
    Column(
        "lot_size",
        pl.UInt64,
        "Nullable(UInt64)",
        "Units of the underlying per contract (UDiFF NewBrdLotQty); UDiFF files only.",
    ),
    Column("source_format", pl.String, "String", "Layout the row was read from: legacy or udiff."),
)

_LEGACY = {
    "trade_date": "TIMESTAMP",
    "instrument": "INSTRUMENT",
    "symbol": "SYMBOL",
    "expiry_date": "EXPIRY_DT",
    "strike_price": "STRIKE_PR",
    "option_type": "OPTION_TYP",
    "open": "OPEN",
    "high": "HIGH",
    "low": "LOW",
    "close": "CLOSE",
    "settle_price": "SETTLE_PR",
    "open_interest": "OPEN_INT",
    "change_in_oi": "CHG_IN_OI",
    "contracts": "CONTRACTS",
    "turnover": "VAL_INLAKH",
}
_UDIFF = {
    "trade_date": "TradDt",
    "instrument": "FinInstrmTp",
    "symbol": "TckrSymb",
    # FininstrmActlXpryDt repeats it in every file seen; XpryDt names the contract.
    "expiry_date": "XpryDt",
    "strike_price": "StrkPric",
    "option_type": "OptnTp",
    "open": "OpnPric",
    "high": "HghPric",
    "low": "LwPric",
    "close": "ClsPric",
    "settle_price": "SttlmPric",
    "open_interest": "OpnIntrst",
    "change_in_oi": "ChngInOpnIntrst",
    "contracts": "TtlTradgVol",
    "turnover": "TtlTrfVal",
    "trades": "TtlNbOfTxsExctd",
    "underlying_price": "UndrlygPric",
    "lot_size": "NewBrdLotQty",
}
#: Each layout's instrument codes -> silver's.
_INSTRUMENT_CODES = {
    "legacy": {name: name for name in FUTURES + OPTIONS},
    "udiff": UDIFF_INSTRUMENTS,
}
#: What each layout prints on a future for "no strike" and "no option type".
_NO_STRIKE = {"legacy": 0.0, "udiff": None}
_NO_OPTION = {"legacy": "XX", "udiff": None}
#: Prices where 0 means "none": nothing traded, or no settlement price.
_ZERO_IS_NONE = ("open", "high", "low", "settle_price")

KEY = ("trade_date", "instrument", "symbol", "expiry_date", "strike_price", "option_type")

#: What a sound day looks like. A contract's close can fall outside its day's range (NSE's close
#: for derivatives is not the last trade; seen in real UDiFF files), so that is only a warning.
#: A blank number is null in silver: the close must be there; a blank open interest, volume or
#: turnover is recorded as a warning.
CHECKS = (
    *not_null("close"),
    *not_null("open_interest", "change_in_oi", "contracts", "turnover", severity=WARNING),
    *price_range(close_severity=WARNING),
    *positive("open", "high", "low", "close", "settle_price", "underlying_price"),
    *positive("strike_price", "lot_size"),
    *non_negative("contracts", "open_interest", "turnover", "trades"),
    at_most("trade_date", "expiry_date"),
    one_of("instrument", FUTURES + OPTIONS),
    one_of("option_type", ("CE", "PE")),
    *rows_like_previous_day(),
)


def remote_paths(trade_date: dt.date) -> list[str]:
    return bhavcopy_paths(trade_date, "FO", "DERIVATIVES")


def parse(raw: bytes, file_name: str) -> pl.DataFrame:
    """Either layout, zipped or plain, to silver; the header decides which layout it is."""
    opened = open_csv(raw, file_name)
    names = opened.names
    if "TckrSymb" in names:
        source_format, source = "udiff", _UDIFF
        check_layout(names, file_name, "UDiFF", UDIFF_LAYOUT, [*_UDIFF.values(), "Sgmt"])
    elif "INSTRUMENT" in names:
        source_format, source = "legacy", _LEGACY
        check_layout(names, file_name, "legacy F&O", _LEGACY.values(), _LEGACY.values())
    else:
        raise ParseError(
            file_name,
            "expected a legacy (INSTRUMENT,SYMBOL,EXPIRY_DT,...) or UDiFF (TradDt,...,TckrSymb,"
            f"...) F&O bhavcopy header, found {','.join(names)}",
            line=1,
        )
    # The other segment's UDiFF file has the same header: only the segment tells them apart.
    segment = {"Sgmt": "FO"} if source_format == "udiff" else {}
    silver = read_columns(opened, COLUMNS, source, require=segment)
    single_date(silver, file_name, "trade_date", file_column=source["trade_date"])
    codes = _INSTRUMENT_CODES[source_format]
    instrument = silver["instrument"].replace_strict(codes, default=None)
    refuse_rows(
        silver,
        file_name,
        instrument.is_null(),
        column=source["instrument"],
        shown="instrument",
        expected=f"one of {', '.join(codes)}",
    )
    silver = silver.with_columns(instrument=instrument)
    if source_format == "legacy":
        # Lakhs carry two decimals: rounding to paise only removes the float noise.
        silver = silver.with_columns(turnover=(pl.col("turnover") * LAKH).round(2))
    silver = _contract_terms(silver, file_name, source_format, source)
    silver = silver.with_columns(
        *(pl.col(name).replace(0.0, None) for name in _ZERO_IS_NONE),
        *(pl.lit(None).alias(c.name) for c in COLUMNS if c.nullable and c.name not in silver),
        source_format=pl.lit(source_format),
    )
    require_unique(silver, file_name, KEY)
    return DATASET.conform(silver)


def _contract_terms(
    silver: pl.DataFrame, file_name: str, source_format: str, source: dict[str, str]
) -> pl.DataFrame:
    """Strike and option type: required on options, the layout's "none" on futures -> null."""
    future = silver["instrument"].is_in(FUTURES)
    no_strike, no_option = _NO_STRIKE[source_format], _NO_OPTION[source_format]
    option_type, strike = silver["option_type"], silver["strike_price"]
    checks = (
        (
            "option_type",
            future & option_type.ne_missing(no_option),
            f"{_printed(no_option)} on a future",
        ),
        (
            "strike_price",
            future & strike.ne_missing(no_strike),
            f"{_printed(no_strike)} on a future",
        ),
        (
            "option_type",
            ~future & ~option_type.is_in(["CE", "PE"]).fill_null(False),
            "CE or PE on an option",
        ),
        ("strike_price", ~future & strike.is_null(), "a strike on an option"),
    )
    for column, bad, expected in checks:
        refuse_rows(silver, file_name, bad, column=source[column], shown=column, expected=expected)
    return silver.with_columns(
        strike_price=pl.when(~future).then(pl.col("strike_price")),
        option_type=pl.when(~future).then(pl.col("option_type")),
    )


def _printed(value: object) -> str:
    return "nothing" if value is None else repr(value)


DATASET = Dataset(
    name="fo_bhavcopy",
    table="fo_bhavcopy",
    columns=COLUMNS,
    key=KEY,
    parse=parse,
    publication=DailyFile(remote_paths),
    doc=__doc__,
    checks=CHECKS,
    segment="FO",
)
