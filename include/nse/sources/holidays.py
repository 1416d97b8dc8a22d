"""Holidays: the days NSE lists as closed, per market segment, from its holiday master.

NSE's `/api/holiday-master?type=trading` answers one JSON object for the current year: a list
per segment code (CM equities, FO equity derivatives, CD currency derivatives, COM commodities,
CBM, CMOT, IRD, MF, NDM, NTRP, SLBS...), each entry `{"tradingDate": "26-Jan-2026", "weekDay":
"Monday", "description": "Republic Day", "Sr_no": 1}`. Since 2025 the entries also carry
`morning_session` and `evening_session`, which NSE fills for COM only (`Open` or `Closed`): a
COM "holiday" with one session open is a half day. Lists include holidays that fall on a
weekend. Some consumers keep only the CM list, a bare JSON array of the same entries; that shape
is read as segment CM.

Silver holds one row per (date, segment). The weekday NSE prints is checked against the date.
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from include.nse.dates import nse_date
from include.nse.errors import ParseError
from include.nse.payload import read_json
from include.nse.sources.base import ApiDocument, Column, Dataset, Step
from include.nse.sources.checks import WARNING, not_null, one_of

API_PATH = "/api/holiday-master"
API_PARAMS = {"type": "trading"}
BRONZE_FILE = "holiday-master_type=trading.json"
#: A bare list of entries is NSE's CM list on its own.
BARE_LIST_SEGMENT = "CM"
SESSION_STATES = ("Open", "Closed")

COLUMNS = (
    Column("date", pl.Date, "Date", "The day NSE lists as a holiday for the segment."),
    Column("segment", pl.String, "String", "NSE's segment code: CM, FO, CD, COM, CMOT, IRD..."),
    Column("description", pl.String, "String", "The holiday, as NSE names it."),
    Column("weekday", pl.String, "String", "The day of the week NSE prints (Monday...Sunday)."),
    Column(
        "morning_session",
        pl.String,
        "Nullable(String)",
        "COM only: Open or Closed; null where NSE gives none.",
    ),
    Column(
        "evening_session",
        pl.String,
        "Nullable(String)",
        "COM only: Open or Closed; a COM holiday with a session open is a half day.",
    ),
)
KEY = ("date", "segment")
#: Segment codes in NSE's holiday master (every list of the real 2023 and 2025 answers).
SEGMENTS = ("CBM", "CD", "CM", "CMOT", "COM", "FO", "IRD", "MF", "NDM", "NTRP", "SLBS")
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
#: What a sound holiday master looks like. A segment code outside the known ones is only
#: recorded: NSE adds segments now and then, and only CM, FO, CD and COM steer the calendar.
CHECKS = (
    *not_null("description", "weekday"),
    one_of("weekday", WEEKDAYS),
    one_of("morning_session", SESSION_STATES),
    one_of("evening_session", SESSION_STATES),
    one_of("segment", SEGMENTS, WARNING),
)


def _lists(raw: bytes, file_name: str) -> dict[str, list]:
    data = read_json(raw, file_name)
    if isinstance(data, list):
        data = {BARE_LIST_SEGMENT: data}
    if not isinstance(data, dict) or not data:
        raise ParseError(
            file_name,
            f"expected an object of segment lists or a list of holidays, found {data!r:.40} "
            "(NSE answers {} when throttling)",
        )
    for segment, entries in data.items():
        if not isinstance(entries, list):
            raise ParseError(
                file_name, f"expected a list of holidays, found {entries!r:.40}", column=segment
            )
    return data


def _field(entry: dict, name: str, file_name: str, where: str) -> str:
    value = entry.get(name)
    if not isinstance(value, str) or not value.strip():
        raise ParseError(file_name, f"{where}: expected text in {name}, found {value!r}")
    return value.strip()


def _session(entry: dict, name: str, file_name: str, where: str) -> str | None:
    value = entry.get(name)
    if value is None:
        return None
    if value not in SESSION_STATES:
        raise ParseError(
            file_name, f"{where}: expected {name} Open, Closed or null, found {value!r}"
        )
    return value


def parse(raw: bytes, file_name: str) -> pl.DataFrame:
    """Every segment's list to silver rows."""
    rows = []
    for segment, entries in _lists(raw, file_name).items():
        for number, entry in enumerate(entries, start=1):
            where = f"{segment} entry {number}"
            if not isinstance(entry, dict):
                raise ParseError(file_name, f"{where}: expected an object, found {entry!r:.40}")
            printed = _field(entry, "tradingDate", file_name, where)
            try:
                day = nse_date(printed)
            except ValueError as exc:
                raise ParseError(file_name, f"{where}: tradingDate: {exc}") from None
            weekday = _field(entry, "weekDay", file_name, where)
            if weekday != WEEKDAYS[day.weekday()]:
                raise ParseError(
                    file_name,
                    f"{where}: {printed} is a {WEEKDAYS[day.weekday()]}, "
                    f"but weekDay says {weekday!r}",
                )
            rows.append(
                {
                    "date": day,
                    "segment": segment,
                    "description": " ".join(_field(entry, "description", file_name, where).split()),
                    "weekday": weekday,
                    "morning_session": _session(entry, "morning_session", file_name, where),
                    "evening_session": _session(entry, "evening_session", file_name, where),
                }
            )
    frame = pl.DataFrame(rows, schema=DATASET.schema)
    repeated = frame.filter(pl.struct(KEY).is_duplicated())
    if repeated.height:
        first = repeated.row(0, named=True)
        raise ParseError(
            file_name, f"{first['segment']} lists {first['date']} twice", column=first["segment"]
        )
    return frame.sort(["segment", "date"])


def _refresh_calendar(ctx, dataset, loaded: dict) -> dict:
    from include.nse import calendar_refresh

    return calendar_refresh.refresh(ctx, dataset.name, dt.date.fromisoformat(loaded["trade_date"]))


DATASET = Dataset(
    name="holidays",
    table="holidays",
    columns=COLUMNS,
    key=KEY,
    parse=parse,
    publication=ApiDocument(API_PATH, API_PARAMS, BRONZE_FILE),
    doc=__doc__,
    checks=CHECKS,
    segment=None,
    date_column=None,
    warehouse_partition="year",
    after=(
        Step(
            "refresh_calendar",
            _refresh_calendar,
            "NSE's lists into the timetables' holiday file and every year of "
            "nse.trading_calendar; where NSE and the calendar library disagree.",
        ),
    ),
)
