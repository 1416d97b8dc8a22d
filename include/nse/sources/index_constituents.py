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
  companyName, industry and isin; `timestamp` dates the response. Text fields must be JSON
  strings (series and industry may be null): a number or a list there is refused, naming the
  field, never turned into text.

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
import logging
import re
from dataclasses import dataclass
from typing import ClassVar

import polars as pl

from include.nse.dates import IST, http_date_ist, month_code, nse_date, nse_datetime
from include.nse.errors import NotPublished, ParseError
from include.nse.payload import json_object, sniff, zip_members
from include.nse.sources._csv import (
    LINE,
    csv_bytes,
    read_csv,
    refuse_rows,
    require_columns,
    require_unique,
    to_silver,
)
from include.nse.sources.base import (
    Column,
    Dataset,
    Keep,
    Publication,
    Request,
    Step,
    kept_if_refused,
)
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

log = logging.getLogger(__name__)

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
    kind = sniff(raw)
    if kind == "zip":
        silver = _parse_mcwb(raw, file_name)
    elif kind == "json":
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
    members = zip_members(raw, file_name, lambda name: name.lower().endswith("_mcwb.csv"))
    if not members:
        raise ParseError(file_name, "expected <index>_mcwb.csv members, found none")
    frames = [_mcwb_member(data, f"{file_name}:{name}") for name, data in sorted(members.items())]
    silver = pl.concat(frames)
    require_unique(silver, file_name, KEY)
    return silver


def _mcwb_member(data: bytes, where: str) -> pl.DataFrame:
    data = csv_bytes(data, where)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ParseError(where, f"expected UTF-8 text ({exc.reason})", line=line) from None
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
    try:
        as_of = nse_date(last_day.group(1))
    except ValueError as exc:
        raise ParseError(where, f"last day of trading: {exc}") from None
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


# ---- the API --------------------------------------------------------------------------------
def _parse_api(raw: bytes, file_name: str) -> pl.DataFrame:
    document = json_object(raw, file_name)
    data = document.get("data")
    if not isinstance(data, list) or not data:
        raise ParseError(
            file_name,
            "expected equity-stockIndices JSON with a non-empty 'data' list",
            column="data",
        )
    for position, row in enumerate(data):
        if not isinstance(row, dict):
            raise ParseError(
                file_name, f"expected an object, found {row!r:.40}", column=f"data[{position}]"
            )
        priority = row.get("priority")
        if priority is not None and (not isinstance(priority, int) or isinstance(priority, bool)):
            raise ParseError(
                file_name,
                f"expected a whole number (1 for the index's own row), found {priority!r:.40}",
                column=f"data[{position}].priority",
            )
    own = [position for position, row in enumerate(data) if row.get("priority") == 1]
    if document.get("name") is not None:
        name = _api_text(document, "name", file_name, "name")
    elif own:
        name = _api_text(data[own[0]], "symbol", file_name, f"data[{own[0]}].symbol")
    else:
        raise ParseError(file_name, "expected the index's own row (priority 1) naming it")
    try:
        as_of = nse_datetime(document.get("timestamp")).date()
    except ValueError as exc:
        raise ParseError(file_name, str(exc), column="timestamp") from None
    records = []
    for position, row in enumerate(data):
        if row.get("priority") == 1:
            continue
        meta = row.get("meta")
        where = f"data[{position}]"
        if not isinstance(meta, dict):
            raise ParseError(file_name, "expected a 'meta' block", column=where)
        record = {
            "symbol": _api_text(row, "symbol", file_name, f"{where}.symbol"),
            "series": _api_text(row, "series", file_name, f"{where}.series", required=False),
            "company_name": _api_text(meta, "companyName", file_name, f"{where}.meta.companyName"),
            "industry": _api_text(
                meta, "industry", file_name, f"{where}.meta.industry", required=False
            ),
            "isin": _api_text(meta, "isin", file_name, f"{where}.meta.isin"),
        }
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
        index_name=pl.lit(name.upper()),
        trade_date=pl.lit(as_of),
        as_of=pl.lit(as_of),
        weight=pl.lit(None, pl.Float64),
        source_format=pl.lit("api"),
    )
    require_unique(silver, file_name, KEY)
    return silver


def _api_text(obj: dict, field: str, file_name: str, where: str, *, required: bool = True):
    """A JSON string, as sent; null (or absent) only where not `required`. A number, list or
    object where text belongs is refused, not turned into text."""
    value = obj.get(field)
    if value is None and not required:
        return None
    if not isinstance(value, str) or (required and not value.strip()):
        expected = "text" if required else "text or null"
        raise ParseError(file_name, f"expected {expected}, found {value!r:.40}", column=where)
    return value


# ---- fetching a day's lists -----------------------------------------------------------------
def _today() -> dt.date:
    return dt.datetime.now(IST).date()


@dataclass(frozen=True)
class IndexLists(Publication):
    """A day's snapshot is one list per index, each fetched on its own into its own bronze
    folder (`index=<slug>`), and filed under the trade date only when it can be that day's:

    - the archive host's current list when its Last-Modified day (in Mumbai) is not after the
      trade date: the file has not changed since, so it is the list in force that day. Without
      the header, only on the day itself (a run on the trade date, not a backfill);
    - otherwise, for the indices in NSE's monthly weightage archive, that archive when it is as
      of the trade date, i.e. on the month's last trading day: how history is backfilled, one
      snapshot a month, with weights;
    - when the archive host has no list at all (a 404, or an HTML page served with 200), the
      API, when its timestamp falls on the trade date.

    A backfill over a range therefore files a snapshot on each month's last trading day for
    NIFTY 50 and NIFTY NEXT 50, and skips the other days with the reason.
    """

    items_param: ClassVar[str] = "indices"
    today: object = _today

    def default_items(self, lake) -> list[str]:
        return list(DEFAULT_INDICES)

    def fetch(self, client, request: Request, keep: Keep) -> dict:
        names = list(request.items or DEFAULT_INDICES)
        for name in names:
            index(name)  # an unknown name fails here, listing the known ones
        found, missing = {}, {}
        for name in names:
            source, reason = self._fetch_index(client, index(name), request.trade_date, keep)
            if source is None:
                missing[name] = reason
                log.info("%s for %s: %s", name, request.trade_date, reason)
            else:
                found[name] = source
        if not found:
            reasons = "; ".join(f"{name}: {reason}" for name, reason in missing.items())
            raise NotPublished(DATASET.name, f"no index list for {request.trade_date} ({reasons})")
        return {"indices": found, "missing": missing}

    def _fetch_index(
        self, client, listed: Index, day: dt.date, keep: Keep
    ) -> tuple[str | None, str | None]:
        """Keep the index's list for the day: (its source, None), or (None, why there is none)."""
        part = f"index={listed.slug}"
        try:
            response = client.get_archive(listed.list_path, expect=("csv",))
        except NotPublished as e:
            return self._from_api(client, listed, day, keep, f"{e.url}: {e.reason}")
        published = http_date_ist(response.headers.get("last-modified"))
        if (day >= self.today()) if published is None else (published <= day):
            keep(response, part=part)
            return "csv", None
        reason = f"{response.url} is the list published on {published or self.today()}, after {day}"
        if listed.mcwb_member is None:
            return None, reason
        if (day + dt.timedelta(days=7)).month == day.month:
            # A month's last trading day is in its last week: other days need no request.
            return None, f"{reason}; the monthly archive is as of the month's last trading day only"
        try:
            monthly = client.get_archive(mcwb_path(day), expect=("zip",))
        except NotPublished as e:
            return None, f"{reason}; {e.url}: {e.reason}"
        with kept_if_refused(keep, monthly, part=part):
            as_of = own_rows(monthly.content, monthly.file_name, listed)["as_of"][0]
        if as_of != day:
            return None, f"{reason}; {monthly.url} is as of {as_of}"
        keep(monthly, part=part)
        return "mcwb", None

    def _from_api(
        self, client, listed: Index, day: dt.date, keep: Keep, reason: str
    ) -> tuple[str | None, str | None]:
        try:
            response = client.get_api(API_PATH, {"index": listed.name})
        except NotPublished as e:
            return None, f"{reason}; {e.url}: {e.reason}"
        file_name, part = f"equity-stockIndices_{listed.slug}.json", f"index={listed.slug}"
        with kept_if_refused(keep, response, file_name, part):
            as_of = own_rows(response.content, file_name, listed)["as_of"][0]
        if as_of != day:
            return None, f"{reason}; {response.url} is the list as of {as_of}, not {day}"
        keep(response, file_name, part=part)
        return "api", None

    def stamp(self, frame: pl.DataFrame, record, trade_date: dt.date) -> pl.DataFrame:
        """The file's rows of its own index, filed under the trade date; a current list is as
        of its Last-Modified day, the other shapes say their own."""
        slug = (record.part or "").removeprefix("index=")
        listed = next((i for i in INDICES if i.slug == slug), None)
        if listed is None:
            raise ParseError(record.file_name, f"kept under {record.part!r}, not a known index")
        rows = _of_index(frame, record.file_name, listed)
        if rows["source_format"][0] == "csv":
            rows = rows.with_columns(
                as_of=pl.lit(http_date_ist(record.headers.get("last-modified")), pl.Date)
            )
        return rows.with_columns(trade_date=pl.lit(trade_date))


def own_rows(raw: bytes, file_name: str, listed: Index) -> pl.DataFrame:
    """The file's rows of `listed`: a monthly archive holds several indices."""
    return _of_index(parse(raw, file_name), file_name, listed)


def _of_index(frame: pl.DataFrame, file_name: str, listed: Index) -> pl.DataFrame:
    rows = frame.filter(pl.col("index_name") == listed.name)
    if rows.is_empty():
        raise ParseError(file_name, f"holds no list of {listed.name}")
    return rows


def _changes(ctx, dataset, loaded: dict) -> dict:
    from include.nse.index_membership import changes_on

    day = dt.date.fromisoformat(loaded["trade_date"])
    with ctx.database() as (client, database):
        found = changes_on(client, day, database)
    for change in found:
        log.info("%(index_name)s: %(change)s of %(symbol)s", change)
    return {"trade_date": day.isoformat(), "changes": found}


DATASET = Dataset(
    name="index_constituents",
    table="index_constituents",
    columns=COLUMNS,
    key=KEY,
    parse=parse,
    publication=IndexLists(),
    doc=__doc__,
    checks=CHECKS,
    after=(
        Step(
            "changes",
            _changes,
            "Inclusions and exclusions against each index's previous snapshot.",
        ),
    ),
)
