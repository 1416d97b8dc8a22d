"""Refreshing the trading calendar from NSE's holiday master: bronze, silver, lake file, warehouse.

NSE's `/api/holiday-master?type=trading` answers the current year's lists, so the lake keeps one
partition per day the lists were fetched (`trade_date=` is that day): bronze holds the JSON as
served, silver the parsed rows. The lists then go into the holiday file the scheduler reads
(`include.nse.calendar.REFRESHED_FILE`), merged with the years earlier refreshes wrote, and into
ClickHouse: `holidays` as NSE lists them, and `trading_calendar` with every day of every year the
calendar knows, per segment. Each step returns a small stats dict.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import polars as pl

from include.nse import warehouse
from include.nse.calendar import (
    LIBRARY_START,
    Holiday,
    TradingCalendar,
    library_sessions,
    load_calendar,
    packaged_holidays,
    read_holidays,
    read_special_sessions,
    refreshed_file,
    write_holidays,
)
from include.nse.client import NSEClient
from include.nse.errors import ParseError
from include.nse.lake import Lake, sha256_bytes
from include.nse.pipeline import keep_response
from include.nse.sources.holidays import API_PARAMS, API_PATH, DATASET

BRONZE_FILE = "holiday-master_type=trading.json"
#: Segments the `trading_calendar` table covers.
CALENDAR_SEGMENTS = ("CM", "FO", "CD", "COM")
#: Segments the calendar library describes (BSE's equity market), so worth reconciling.
LIBRARY_SEGMENTS = ("CM", "FO")
CALENDAR_COLUMNS = ("date", "segment", "is_trading_day", "day_kind", "description", "source")


def fetch_holiday_master(client: NSEClient, lake: Lake, day: dt.date) -> dict:
    """NSE's holiday master into bronze, under the day it was fetched."""
    started = time.monotonic()
    response = client.get_api(API_PATH, API_PARAMS)
    return {
        "dataset": DATASET.name,
        "fetched_on": day.isoformat(),
        **keep_response(lake, DATASET.name, day, BRONZE_FILE, response, started),
    }


def holidays_to_silver(lake: Lake, day: dt.date) -> dict:
    """Parse the day's latest bronze holiday master into its silver partition."""
    record = lake.latest_bronze(DATASET.name, day)
    path = Path(record.path)
    raw = path.read_bytes()
    if sha256_bytes(raw) != record.sha256:
        raise ParseError(path.name, "bronze file does not match the sha256 in its manifest")
    df = DATASET.parse(raw, path.name)
    silver = lake.write_silver(DATASET.name, day, df)
    return {
        "dataset": DATASET.name,
        "fetched_on": day.isoformat(),
        "path": str(silver),
        "rows": df.height,
        "segments": df["segment"].n_unique(),
        "years": sorted(set(df["date"].dt.year().to_list())),
    }


def _holidays(df: pl.DataFrame) -> list[Holiday]:
    return [
        Holiday(
            row["date"],
            row["segment"],
            row["description"],
            row["morning_session"],
            row["evening_session"],
        )
        for row in df.iter_rows(named=True)
    ]


def refresh_calendar_file(lake: Lake, day: dt.date) -> dict:
    """Write the day's lists into the scheduler's holiday file; report where NSE and the library
    disagree on the equity segments.

    The file keeps what earlier refreshes wrote for (segment, year) pairs these lists do not
    cover, so last year's list survives this year's refresh.
    """
    fetched = _holidays(lake.read_silver(DATASET.name, day))
    covered = {(h.segment, h.date.year) for h in fetched}
    path = refreshed_file(lake.root)
    kept = [
        h
        for h in (read_holidays(path) if path.is_file() else [])
        if (h.segment, h.date.year) not in covered
    ]
    write_holidays(kept + fetched, path)
    # NSE's lists just fetched over the packaged ones, compared with the library.
    packaged = [h for h in packaged_holidays() if (h.segment, h.date.year) not in covered]
    calendar = TradingCalendar(packaged + fetched, read_special_sessions())
    years = sorted({year for _, year in covered})
    differences = [
        d
        for segment in LIBRARY_SEGMENTS
        for d in calendar.differences(segment)
        if int(d["date"][:4]) in years
    ]
    return {
        "path": str(path),
        "holidays": len(kept) + len(fetched),
        "years": years,
        "differences": differences,
    }


def calendar_frame(calendar: TradingCalendar, year: int) -> pl.DataFrame:
    """Every day of `year` for each of `CALENDAR_SEGMENTS`: trading or not, and why."""
    days = [dt.date(year, 1, 1) + dt.timedelta(days=i) for i in range(366)]
    rows = [
        (day, segment, int(info.is_trading_day), info.kind, info.description, info.source)
        for segment in CALENDAR_SEGMENTS
        for day in days
        if day.year == year
        for info in [calendar.classify(day, segment)]
    ]
    return pl.DataFrame(
        rows,
        schema={
            "date": pl.Date,
            "segment": pl.String,
            "is_trading_day": pl.UInt8,
            "day_kind": pl.String,
            "description": pl.String,
            "source": pl.String,
        },
        orient="row",
    )


def load_warehouse(ch_client, lake: Lake, day: dt.date, database: str = "nse") -> dict:
    """Replace the fetched years of `holidays`, and every year of `trading_calendar`.

    The calendar comes from the holiday file `refresh_calendar_file` wrote, so ClickHouse and
    the scheduler answer alike. Years run from the library's first to the last any list covers.
    """
    started = time.monotonic()
    db = warehouse.identifier(database)
    holidays = lake.read_silver(DATASET.name, day)
    years = sorted(set(holidays["date"].dt.year().to_list()))
    for year in years:
        rows = holidays.filter(pl.col("date").dt.year() == year)
        warehouse.replace_partition(ch_client, f"{db}.{DATASET.table}", year, rows)
    calendar = load_calendar(refreshed_file(lake.root))
    last = max(
        [library_sessions()[2].year]
        + [year for s in calendar.segments for year in calendar.covered_years(s)]
    )
    calendar_rows = 0
    for year in range(LIBRARY_START.year, last + 1):
        frame = calendar_frame(calendar, year)
        warehouse.replace_partition(ch_client, f"{db}.trading_calendar", year, frame)
        calendar_rows += frame.height
    return {
        "holidays_rows": holidays.height,
        "holiday_years": years,
        "calendar_rows": calendar_rows,
        "calendar_years": [LIBRARY_START.year, last],
        "seconds": round(time.monotonic() - started, 3),
    }
