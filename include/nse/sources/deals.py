"""Bulk and block deals: the large trades NSE names with their client, one row per deal.

NSE publishes the same columns in three shapes, and the parser takes any of them:

- the archive's daily files `/content/equities/bulk.csv` and `block.csv`, plain CSV with dates
  like `03-DEC-2024`; `bulk.csv` has a Remarks column, `block.csv` none. A day without block
  deals is a header and the single row `NO RECORDS,,,,,,`: zero deals, not an error. Each path
  only ever holds the latest day, so a run checks the file's date (see `file_date`);
- web exports from NSE's site (and the API's CSV answer): every field quoted, a UTF-8 BOM,
  trailing spaces in header names, Indian digit grouping (`1,08,000`), HTML entities in names
  (`&amp;`), dates like `03-Dec-2024`;
- the historical API `/api/historicalOR/bulk-block-short-deals?optionType=bulk_deals&from=
  DD-MM-YYYY&to=DD-MM-YYYY` (at most a year per call): JSON deals with `BD_*` keys, under
  `data` or as a bare list, quantity and price as JSON numbers, remarks `"-"` or null.

A client can do two deals of the same size at the same price on one day, and NSE lists both:
they are two deals, not a duplicate. `deal_ordinal` numbers the rows that agree on everything
else in the key (1, 2, ... in file order), so the key stays unique, a rerun of the same file
gives the same ordinals, and neither deal is merged away. Rows that agree on the whole key are
interchangeable, so the ordinal does not depend on the order NSE lists them in.
"""

from __future__ import annotations

import datetime as dt
import html
import re

import polars as pl

from include.nse.errors import ParseError
from include.nse.payload import BOM, is_number, read_json, sniff
from include.nse.sources._csv import LINE, read_csv, refuse_rows, require_unique, to_silver
from include.nse.sources.base import Column, Dataset, LatestDayFile
from include.nse.sources.checks import (
    WARNING,
    not_null,
    on_trade_date,
    one_of,
    positive,
    row_count_band,
)

HISTORY_PATH = "/api/historicalOR/bulk-block-short-deals"
NO_RECORDS = "NO RECORDS"
SIDES = ("BUY", "SELL")

COLUMNS = (
    Column("trade_date", pl.Date, "Date", "Trading day of the deal."),
    Column("symbol", pl.String, "String", "NSE trading symbol."),
    Column(
        "security_name",
        pl.String,
        "String",
        "Security's name as NSE prints it (the archive files cut it to 25 characters).",
    ),
    Column("client_name", pl.String, "String", "Client who bought or sold, as NSE prints it."),
    Column("side", pl.String, "String", "BUY or SELL."),
    Column("quantity", pl.UInt64, "UInt64", "Shares traded in the deal."),
    Column(
        "price",
        pl.Float64,
        "Float64",
        "Trade price, or the weighted average price of the client's trades, rupees.",
    ),
    Column(
        "remarks",
        pl.String,
        "Nullable(String)",
        "NSE's remarks on a bulk deal; null where it prints '-', and always for block deals.",
    ),
    Column(
        "deal_ordinal",
        pl.UInt32,
        "UInt32",
        "1 for the first deal with this date, symbol, client, side, quantity and price; 2 for "
        "an identical second one, and so on. Keeps identical deals apart in the key.",
    ),
    Column(
        "source_format",
        pl.String,
        "String",
        "Shape the row was read from: archive_csv, export_csv (every field quoted) or api_json.",
    ),
)
KEY = ("trade_date", "symbol", "client_name", "side", "quantity", "price", "deal_ordinal")
#: Deal counts swing from day to day (46 and 63 bulk deals in two real files; block deals often
#: none), so the row count compared with the previous day's is only a warning, in a wide band.
DEALS_ROW_BAND = (0.2, 5.0)
#: What a sound day looks like.
CHECKS = (
    *not_null("security_name"),
    *positive("quantity", "price", "deal_ordinal"),
    one_of("side", SIDES),
    on_trade_date(),
    row_count_band(*DEALS_ROW_BAND, WARNING),
)

#: Silver column -> the file's header, compared after `_normalised` (web exports pad names and
#: may space the slash).
_CSV_SOURCE = {
    "trade_date": "Date",
    "symbol": "Symbol",
    "security_name": "Security Name",
    "client_name": "Client Name",
    "side": "Buy/Sell",
    "quantity": "Quantity Traded",
    "price": "Trade Price / Wght. Avg. Price",
}
_REMARKS = "Remarks"
_JSON_SOURCE = {
    "trade_date": "BD_DT_DATE",
    "symbol": "BD_SYMBOL",
    "security_name": "BD_SCRIP_NAME",
    "client_name": "BD_CLIENT_NAME",
    "side": "BD_BUY_SELL",
    "quantity": "BD_QTY_TRD",
    "price": "BD_TP_WATP",
    "remarks": "BD_REMARKS",
}
#: The API's keys that hold JSON numbers.
_JSON_NUMBERS = frozenset({"BD_QTY_TRD", "BD_TP_WATP"})
#: Text NSE may write with HTML entities (`M&amp;M`, `LARSEN &amp; TOUBRO`).
_TEXT = ("symbol", "security_name", "client_name", "remarks")


def _normalised(name: str) -> str:
    return re.sub(r"\s*/\s*", "/", " ".join(name.split())).lower()


def parse(raw: bytes, file_name: str, *, remarks: bool) -> pl.DataFrame:
    """Any of the three shapes to silver; `remarks` says whether the file kind has Remarks.

    JSON is told from CSV by its first character. A CSV's Remarks column must be there for bulk
    deals and absent for block deals, which keeps one kind's file out of the other's table.
    """
    if sniff(raw) == "json":
        return _parse_json(raw, file_name)
    return _parse_csv(raw, file_name, remarks=remarks)


def _parse_csv(raw: bytes, file_name: str, *, remarks: bool) -> pl.DataFrame:
    quoted = raw.removeprefix(BOM).lstrip().startswith(b'"')
    frame = read_csv(raw, file_name)
    by_name = {_normalised(name): name for name in frame.columns if name != LINE}
    source = {silver: by_name.get(_normalised(name), name) for silver, name in _CSV_SOURCE.items()}
    has_remarks = _normalised(_REMARKS) in by_name
    if has_remarks != remarks:
        kind, expected = ("bulk", "a") if remarks else ("block", "no")
        raise ParseError(
            file_name,
            f"expected {expected} Remarks column in a {kind} deals file, "
            f"found {','.join(by_name.values())}",
            line=1,
        )
    if has_remarks:
        source["remarks"] = by_name[_normalised(_REMARKS)]
    frame = _without_no_records(frame, file_name, source["trade_date"])
    silver = to_silver(frame, file_name, COLUMNS, source)
    return _finish(silver, file_name, source, "export_csv" if quoted else "archive_csv")


def _without_no_records(frame: pl.DataFrame, file_name: str, date_column: str) -> pl.DataFrame:
    """No rows for NSE's `NO RECORDS` line; refused next to deals, where it makes no sense."""
    if date_column not in frame.columns:
        return frame  # to_silver names the missing column
    marker = frame[date_column].str.to_uppercase().eq_missing(NO_RECORDS)
    if not marker.any():
        return frame
    if frame.height > 1:
        refuse_rows(
            frame,
            file_name,
            marker,
            column=date_column,
            shown=date_column,
            expected=f"a date (a file with deals has no {NO_RECORDS} line)",
        )
    others = [name for name in frame.columns if name not in (LINE, date_column)]
    filled = [name for name in others if frame[name][0] is not None]
    if filled:
        raise ParseError(
            file_name,
            f"expected nothing after {NO_RECORDS}, found {frame[filled[0]][0]!r}",
            line=frame[LINE][0],
            column=filled[0],
        )
    return frame.clear()


def _parse_json(raw: bytes, file_name: str) -> pl.DataFrame:
    """The API's deals: a list under `data`, or the list itself."""
    document = read_json(raw, file_name)
    deals = document.get("data") if isinstance(document, dict) else document
    if not isinstance(deals, list):
        raise ParseError(file_name, "expected a list of deals, or an object holding one as data")
    for number, deal in enumerate(deals, start=1):
        if not isinstance(deal, dict):
            raise ParseError(
                file_name, f"deal {number} of data: expected an object, found {deal!r}"
            )
    # Every value as stripped text, blanks as null: the shape `to_silver` parses from a CSV. A
    # deal without one of the keys has nothing there, which `to_silver` refuses where required.
    keys = list(_JSON_SOURCE.values())
    frame = pl.DataFrame(
        {LINE: range(1, len(deals) + 1)}
        | {
            key: [_text(deal.get(key), file_name, n, key) for n, deal in enumerate(deals, 1)]
            for key in keys
        },
        schema={LINE: pl.UInt32} | dict.fromkeys(keys, pl.String),
    )
    try:
        silver = to_silver(frame, file_name, COLUMNS, _JSON_SOURCE)
        return _finish(silver, file_name, _JSON_SOURCE, "api_json")
    except ParseError as exc:
        if exc.line is None:
            raise
        # `to_silver` counts lines; here a "line" is a deal's place in data.
        raise ParseError(
            file_name, f"deal {exc.line} of data: {exc.message}", column=exc.column
        ) from None


def _text(value: object, file_name: str, number: int, key: str) -> str | None:
    """A deal's value as text for `to_silver`: numbers only where NSE sends numbers (quantity,
    price), text only where it sends text; anything else is refused, not turned into text."""
    if key in _JSON_NUMBERS and is_number(value):
        return repr(value)
    if value is not None and not isinstance(value, str):
        kind = "a number or text" if key in _JSON_NUMBERS else "text"
        raise ParseError(
            file_name, f"deal {number} of data: expected {kind}, found {value!r}", column=key
        )
    return (value or "").strip() or None


def _finish(
    silver: pl.DataFrame, file_name: str, source: dict[str, str], source_format: str
) -> pl.DataFrame:
    """Unescape names, check sides, number identical deals; the same for every shape."""
    silver = silver.with_columns(
        *(
            pl.col(name).map_elements(html.unescape, return_dtype=pl.String)
            for name in _TEXT
            if name in silver.columns
        ),
        side=pl.col("side").str.to_uppercase(),
    )
    refuse_rows(
        silver,
        file_name,
        ~silver["side"].is_in(SIDES),
        column=source["side"],
        shown="side",
        expected=" or ".join(SIDES),
    )
    silver = silver.with_columns(
        remarks=(
            pl.col("remarks").replace("-", None)
            if "remarks" in silver.columns
            else pl.lit(None, pl.String)
        ),
        deal_ordinal=pl.int_range(1, pl.len() + 1, dtype=pl.UInt32).over(KEY[:-1]),
        source_format=pl.lit(source_format),
    )
    require_unique(silver, file_name, KEY)
    return silver.select(pl.col(c.name).cast(c.dtype, strict=True) for c in COLUMNS)


def file_date(raw: bytes, file_name: str, *, remarks: bool) -> dt.date | None:
    """The one trade date a daily file holds; None for a day without deals (`NO RECORDS`)."""
    dates = parse(raw, file_name, remarks=remarks)["trade_date"].unique()
    if dates.len() > 1:
        raise ParseError(
            file_name,
            f"expected the deals of one day, found {dates.min()} to {dates.max()}",
            column="trade_date",
        )
    return dates.first()


def dataset(name: str, *, archive_file: str, remarks: bool, doc: str) -> Dataset:
    """The face of `bulk_deals` or `block_deals`; they differ in file, API option and Remarks."""

    def history(trade_date: dt.date) -> tuple[str, dict[str, str]]:
        day = f"{trade_date:%d-%m-%Y}"
        return HISTORY_PATH, {"optionType": name, "from": day, "to": day}

    return Dataset(
        name=name,
        table=name,
        columns=COLUMNS,
        key=KEY,
        parse=lambda raw, file_name: parse(raw, file_name, remarks=remarks),
        publication=LatestDayFile(
            path=f"/content/equities/{archive_file}",
            holds=lambda raw, file_name: file_date(raw, file_name, remarks=remarks),
            history_request=history,
        ),
        doc=doc,
        checks=CHECKS,
    )
