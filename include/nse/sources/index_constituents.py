"""Index constituents: which stocks make up each NIFTY index, one snapshot per trade date.

NSE publishes a list in three shapes, all parsed here (the content decides which):

- the current list of an index on the archive host, `/content/indices/ind_nifty50list.csv`
  (Company Name, Industry, Symbol, Series, ISIN Code; CRLF, often no newline at the end). It
  carries no date and no weights, and the index is named only by the file's name. Lists from
  before NSE's 2021 industry classification print old UPPERCASE industries ("FINANCIAL
  SERVICES"); newer ones the new names ("Financial Services", "Oil Gas & Consumable Fuels");
  both are kept as printed, since the two schemes differ in more than case;
- the monthly weightage archive `/content/indices/mcwb_<mon><yy>.zip` (`mcwb_may22.zip`), one
  `<index>_mcwb.csv` per index (NIFTY 50 and NIFTY NEXT 50 in the files seen): a banner row
  ("Annexure II-  Nifty 50 Index : May 2022") and a blank row above the header, the weights
  (Weightage (%)), a totals row with no serial number, then footnotes, one of which states the
  month's last trading day ("Last day of trading was 31-May-2022"): the day the list is as of.
  No ISIN or series; industries in an older, finer scheme ("PRIVATE SECTOR BANK");
- the API's `/api/equity-stockIndices?index=NIFTY%2050`: JSON whose `data` starts with the index
  itself (priority 1) followed by its constituents (priority 0), each with a `meta` block holding
  companyName, industry and isin; `timestamp` dates the response.

Silver holds one row per index, symbol and trade date. `as_of` is the day the source dates the
list to (the archive's last trading day, the API's timestamp, the CSV's Last-Modified date, known
only from the HTTP response); `trade_date` is the day the snapshot is filed under, which is the
source's own date for the archive and the API, and for the CSV the day it was fetched for. ISINs
are checked for form and check digit.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
import zipfile
import zlib
from dataclasses import dataclass

import polars as pl

from include.nse.errors import ParseError
from include.nse.sources._csv import (
    LINE,
    csv_bytes,
    month_code,
    read_csv,
    refuse_rows,
    require_columns,
    require_unique,
    to_silver,
)
from include.nse.sources.base import Column, Dataset
from include.nse.sources.checks import (
    CM_SERIES,
    ISIN_REGEX,
    WARNING,
    Check,
    between,
    matches,
    not_null,
    on_trade_date,
    one_of,
)

COLUMNS = (
    Column(
        "trade_date",
        pl.Date,
        "Date",
        "Day the snapshot is filed under; a list holds from this day until the next snapshot.",
    ),
    Column("index_name", pl.String, "String", "NSE's name of the index, e.g. NIFTY 50."),
    Column("symbol", pl.String, "String", "NSE symbol of the constituent."),
    Column("company_name", pl.String, "String", "Company name as the source prints it."),
    Column(
        "industry",
        pl.String,
        "Nullable(String)",
        "Industry as printed: NSE's classification of the list's time, never normalised.",
    ),
    Column("series", pl.String, "Nullable(String)", "Series (EQ, BE...); null in the archive."),
    Column("isin", pl.String, "Nullable(String)", "ISIN, check digit verified; null in archives."),
    Column(
        "weight",
        pl.Float64,
        "Nullable(Float64)",
        "Weight in the index, percent (monthly archive only); null where NSE gives none.",
    ),
    Column(
        "as_of",
        pl.Date,
        "Nullable(Date)",
        "Day the source dates the list to: the archive's last trading day, the API's timestamp, "
        "the CSV's Last-Modified date (null when the CSV is parsed without its HTTP response).",
    ),
    Column("source_format", pl.String, "String", "Where the row came from: csv, mcwb or api."),
)
KEY = ("trade_date", "index_name", "symbol")
#: What a sound snapshot looks like: one row per symbol and per ISIN in each index (the archive
#: has no ISINs, so rows without one are left out of that check). A series outside the known set
#: is only recorded: NSE's lists hold EQ and BE today and may carry another.
CHECKS = (
    *not_null("company_name"),
    matches("isin", ISIN_REGEX),
    Check(
        "ExpectCompoundColumnsToBeUnique",
        {
            "column_list": ["trade_date", "index_name", "isin"],
            "ignore_row_if": "any_value_is_missing",
        },
    ),
    between("weight", 0, 100),
    on_trade_date(),
    one_of("series", CM_SERIES, WARNING),
)


@dataclass(frozen=True)
class Index:
    """One NIFTY index and NSE's file names for it."""

    #: NSE's name, as the API takes it and the monthly archive's banner spells it.
    name: str
    #: The current list on the archive host, under /content/indices/.
    list_file: str
    #: Its member in the monthly weightage archive, where NSE includes it.
    mcwb_member: str | None = None

    @property
    def list_path(self) -> str:
        return f"/content/indices/{self.list_file}"

    @property
    def slug(self) -> str:
        """`nifty50` for ind_nifty50list.csv: names the index's bronze folder."""
        return self.list_file.removeprefix("ind_").removesuffix("list.csv")


#: The indices loaded unless configured otherwise. NIFTY FIN SERVICE is the API's
#: "NIFTY FINANCIAL SERVICES"; its list is ind_niftyfinancelist.csv.
INDICES = (
    Index("NIFTY 50", "ind_nifty50list.csv", "nifty50_mcwb.csv"),
    Index("NIFTY NEXT 50", "ind_niftynext50list.csv", "niftynext50_mcwb.csv"),
    Index("NIFTY 100", "ind_nifty100list.csv"),
    Index("NIFTY 200", "ind_nifty200list.csv"),
    Index("NIFTY 500", "ind_nifty500list.csv"),
    Index("NIFTY MIDCAP 100", "ind_niftymidcap100list.csv"),
    Index("NIFTY BANK", "ind_niftybanklist.csv"),
    Index("NIFTY IT", "ind_niftyitlist.csv"),
    Index("NIFTY FINANCIAL SERVICES", "ind_niftyfinancelist.csv"),
)
DEFAULT_INDICES = tuple(index.name for index in INDICES)
API_PATH = "/api/equity-stockIndices"

_BY_NAME = {index.name: index for index in INDICES}
_ZIP_MAGIC = b"PK\x03\x04"
_LIST_SOURCE = {
    "company_name": "Company Name",
    "industry": "Industry",
    "symbol": "Symbol",
    "series": "Series",
    "isin": "ISIN Code",
}
_MCWB_SOURCE = {
    "symbol": "Security Symbol",
    "company_name": "Security Name",
    "industry": "Industry",
    "weight": "Weightage (%)",
}
_MCWB_SERIAL = "Sr. No"
_API_COLUMNS = ("symbol", "series", "company_name", "industry", "isin")
_BANNER = re.compile(r"Annexure\s+[IVX]+\s*-\s*(?P<index>.+?)\s+Index\s*:\s*(?P<month>\w+\s+\d{4})")
_LAST_DAY = re.compile(r"Last day of trading was\s+(\d{1,2}-[A-Za-z]+-\d{4})")
_ISIN = re.compile(r"[A-Z]{2}[A-Z0-9]{9}[0-9]")
_ISIN_EXPECTED = "an ISIN of 12 characters with a valid check digit"


def index(name: str) -> Index:
    """The index called `name`, refusing one whose files are not known."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown index {name!r}; known: {', '.join(_BY_NAME)}") from None


def mcwb_path(day: dt.date) -> str:
    """The monthly weightage archive of `day`'s month: mcwb_may22.zip for May 2022."""
    return f"/content/indices/mcwb_{month_code(day).lower()}{day:%y}.zip"


def remote_paths(trade_date: dt.date) -> list[str]:
    """Every file a day's snapshot may come from: each default index's list, then the month's
    archive. The lists are fetched one index at a time (`include.nse.index_membership`)."""
    return [index.list_path for index in INDICES] + [mcwb_path(trade_date)]


def isin_valid(value: str) -> bool:
    """Two letters, nine letters or digits, and a Luhn check digit over letters read as 10..35."""
    if not _ISIN.fullmatch(value):
        return False
    digits = "".join(str(int(char, 36)) for char in value[:-1])
    total = 0
    for position, char in enumerate(reversed(digits)):
        doubled = int(char) * (2 if position % 2 == 0 else 1)
        total += doubled - 9 if doubled > 9 else doubled
    return (-total) % 10 == int(value[-1])


def parse(raw: bytes, file_name: str) -> pl.DataFrame:
    """Any of the three shapes to silver: a ZIP is a monthly archive, JSON the API, else a list."""
    if raw.startswith(_ZIP_MAGIC):
        silver = _parse_mcwb(raw, file_name)
    elif raw.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] in (b"{", b"["):
        silver = _parse_api(raw, file_name)
    else:
        silver = _parse_list(raw, file_name)
    return DATASET.conform(silver)


# ---- the current list (CSV) -----------------------------------------------------------------
def index_of_list(file_name: str) -> Index:
    """The index an `ind_<name>list.csv` file is the list of: NSE names it nowhere else.

    A copy may carry a suffix after an underscore or a dot (ind_nifty50list_2025-06.csv).
    """
    for candidate in INDICES:
        stem = candidate.list_file.removesuffix(".csv")
        if file_name == candidate.list_file or file_name.startswith((stem + "_", stem + ".")):
            return candidate
    raise ParseError(
        file_name,
        "cannot tell which index this list is: expected a file named like one of "
        + ", ".join(index.list_file for index in INDICES),
    )


def _parse_list(raw: bytes, file_name: str) -> pl.DataFrame:
    frame = read_csv(raw, file_name)
    require_columns(frame, file_name, _LIST_SOURCE.values())
    listed = index_of_list(file_name)
    if frame.is_empty():
        raise ParseError(file_name, "expected constituents, found only the header")
    silver = to_silver(frame, file_name, COLUMNS, _LIST_SOURCE)
    _require_isins(silver, file_name)
    silver = silver.with_columns(
        index_name=pl.lit(listed.name),
        trade_date=pl.lit(None, pl.Date),
        as_of=pl.lit(None, pl.Date),
        weight=pl.lit(None, pl.Float64),
        source_format=pl.lit("csv"),
    )
    require_unique(silver, file_name, KEY)
    return silver


def _require_isins(silver: pl.DataFrame, file_name: str) -> None:
    valid = pl.Series([value is not None and isin_valid(value) for value in silver["isin"]])
    refuse_rows(
        silver,
        file_name,
        ~valid,
        column="ISIN Code",
        shown="isin",
        expected=_ISIN_EXPECTED,
    )


# ---- the monthly weightage archive ----------------------------------------------------------
def _parse_mcwb(raw: bytes, file_name: str) -> pl.DataFrame:
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            members = {
                info.filename: archive.read(info)
                for info in archive.infolist()
                if info.filename.lower().endswith("_mcwb.csv")
            }
    except (zipfile.BadZipFile, zlib.error) as exc:
        raise ParseError(file_name, f"expected a readable ZIP: {exc}") from exc
    if not members:
        raise ParseError(file_name, "expected <index>_mcwb.csv members, found none")
    frames = [_mcwb_member(data, f"{file_name}:{name}") for name, data in sorted(members.items())]
    silver = pl.concat(frames)
    require_unique(silver, file_name, KEY)
    return silver


def _mcwb_member(data: bytes, where: str) -> pl.DataFrame:
    try:
        text = csv_bytes(data, where).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ParseError(where, f"expected UTF-8 text ({exc.reason})") from None
    rows = list(csv.reader(io.StringIO(text, newline="")))
    banner = _BANNER.search(rows[0][0] if rows and rows[0] else "")
    if banner is None:
        raise ParseError(
            where, "expected a banner like 'Annexure II- Nifty 50 Index : May 2022'", line=1
        )
    header_at = next(
        (n for n, row in enumerate(rows) if row and row[0].strip() == _MCWB_SERIAL), None
    )
    if header_at is None:
        raise ParseError(where, f"expected a header row starting with {_MCWB_SERIAL!r}")
    names = [name.strip() for name in rows[header_at]]
    table = []
    for number, row in enumerate(rows[header_at + 1 :], start=header_at + 2):
        if not row or not row[0].strip():
            break  # the totals row, with no serial number, ends the table
        if len(row) != len(names):
            raise ParseError(
                where,
                f"expected {len(names)} fields as in the header, found {len(row)}",
                line=number,
            )
        table.append([number, *(field.strip() or None for field in row)])
    else:
        raise ParseError(where, "expected a totals row after the constituents; is the file cut?")
    if not table:
        raise ParseError(where, "expected constituents below the header, found none")
    last_day = next((m for row in rows for m in [_LAST_DAY.search(",".join(row))] if m), None)
    if last_day is None:
        raise ParseError(where, "expected a footnote 'Last day of trading was DD-Mon-YYYY'")
    as_of = _day(last_day.group(1))
    if as_of is None:
        raise ParseError(where, f"expected a date like 31-May-2022, found {last_day.group(1)!r}")
    frame = pl.DataFrame(table, schema=[LINE, *names], orient="row")
    silver = to_silver(frame, where, COLUMNS, _MCWB_SOURCE)
    return silver.with_columns(
        index_name=pl.lit(banner.group("index").upper()),
        trade_date=pl.lit(as_of),
        as_of=pl.lit(as_of),
        series=pl.lit(None, pl.String),
        isin=pl.lit(None, pl.String),
        source_format=pl.lit("mcwb"),
    )


def _day(text: str) -> dt.date | None:
    """31-May-2022 or 01-June-2021: NSE's footnotes spell months both ways."""
    for form in ("%d-%b-%Y", "%d-%B-%Y"):
        try:
            return dt.datetime.strptime(text, form).date()
        except ValueError:
            pass
    return None


# ---- the API --------------------------------------------------------------------------------
def _parse_api(raw: bytes, file_name: str) -> pl.DataFrame:
    try:
        document = json.loads(raw)
    except ValueError as exc:
        raise ParseError(file_name, f"expected JSON: {exc}") from None
    data = document.get("data") if isinstance(document, dict) else None
    if not isinstance(data, list) or not data:
        raise ParseError(
            file_name,
            "expected equity-stockIndices JSON with a non-empty 'data' list",
            column="data",
        )
    own = [row for row in data if isinstance(row, dict) and row.get("priority") == 1]
    name = document.get("name") or (own[0].get("symbol") if own else None)
    if not name:
        raise ParseError(file_name, "expected the index's own row (priority 1) naming it")
    stamp = document.get("timestamp")
    try:
        as_of = dt.datetime.strptime(str(stamp), "%d-%b-%Y %H:%M:%S").date()
    except ValueError:
        raise ParseError(
            file_name, f"expected a timestamp like 27-May-2026 11:54:31, found {stamp!r}"
        ) from None
    records = []
    for position, row in enumerate(data):
        if not isinstance(row, dict) or row.get("priority") == 1:
            continue
        meta = row.get("meta")
        if not isinstance(meta, dict):
            raise ParseError(file_name, "expected a 'meta' block", column=f"data[{position}]")
        record = {
            "symbol": row.get("symbol"),
            "series": row.get("series"),
            "company_name": meta.get("companyName"),
            "industry": meta.get("industry"),
            "isin": meta.get("isin"),
        }
        for field, found in (
            ("symbol", record["symbol"]),
            ("meta.companyName", record["company_name"]),
            ("meta.isin", record["isin"]),
        ):
            if not isinstance(found, str) or not found.strip():
                raise ParseError(
                    file_name, f"expected text, found {found!r}", column=f"data[{position}].{field}"
                )
        if not isin_valid(record["isin"]):
            raise ParseError(
                file_name,
                f"expected {_ISIN_EXPECTED}, found {record['isin']!r}",
                column=f"data[{position}].meta.isin",
            )
        records.append({LINE: position, **record})
    if not records:
        raise ParseError(
            file_name, f"expected constituents of {name} after its own row, found none"
        )
    silver = pl.DataFrame(
        records, schema={LINE: pl.Int64, **dict.fromkeys(_API_COLUMNS, pl.String)}
    )
    silver = silver.with_columns(
        index_name=pl.lit(str(name).upper()),
        trade_date=pl.lit(as_of),
        as_of=pl.lit(as_of),
        weight=pl.lit(None, pl.Float64),
        source_format=pl.lit("api"),
    )
    require_unique(silver, file_name, KEY)
    return silver


DATASET = Dataset(
    name="index_constituents",
    table="index_constituents",
    columns=COLUMNS,
    key=KEY,
    remote_paths=remote_paths,
    parse=parse,
    expected_kinds=("csv", "zip", "json"),
    doc=__doc__,
    checks=CHECKS,
)
