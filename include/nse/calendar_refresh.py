"""The step after the holidays' common chain: NSE's lists become the trading calendar.

The pipeline has fetched, parsed, checked and loaded the holiday master (`sources/holidays.py`:
one silver partition per day the lists were fetched). Here the lists go into the holiday file
the scheduler's timetables read (`include.nse.calendar.refreshed_file`), merged with the years
earlier refreshes wrote, and from that file into ClickHouse's `trading_calendar`: every day of
every year the calendar knows, per segment, so the warehouse and the scheduler answer alike.
"""

from __future__ import annotations

import datetime as dt
import logging
import time

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
from include.nse.lake import Lake

log = logging.getLogger(__name__)
#: Segments the `trading_calendar` table covers.
CALENDAR_SEGMENTS = ("CM", "FO", "CD", "COM")
#: Segments the calendar library describes (BSE's equity market), so worth reconciling.
LIBRARY_SEGMENTS = ("CM", "FO")
CALENDAR_COLUMNS = ("date", "segment", "is_trading_day", "day_kind", "description", "source")


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


def refresh_calendar_file(lake: Lake, day: dt.date, dataset: str = "holidays") -> dict:
    """Write the day's lists into the scheduler's holiday file; report where NSE and the library
    disagree on the equity segments.

    The file keeps what earlier refreshes wrote for (segment, year) pairs these lists do not
    cover, so last year's list survives this year's refresh.
    """
    fetched = _holidays(lake.read_silver(dataset, day))
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


def load_trading_calendar(ch_client, lake: Lake, database: str = "nse") -> dict:
    """Replace every year of `trading_calendar` from the holiday file `refresh_calendar_file`
    wrote. Years run from the library's first to the last any list covers."""
    started = time.monotonic()
    db = warehouse.identifier(database)
    calendar = load_calendar(refreshed_file(lake.root))
    last = max(
        [library_sessions()[2].year]
        + [year for s in calendar.segments for year in calendar.covered_years(s)]
    )
    rows = 0
    for year in range(LIBRARY_START.year, last + 1):
        frame = calendar_frame(calendar, year)
        warehouse.replace_partition(ch_client, f"{db}.trading_calendar", year, frame)
        rows += frame.height
    return {
        "calendar_rows": rows,
        "calendar_years": [LIBRARY_START.year, last],
        "seconds": round(time.monotonic() - started, 3),
    }


def refresh(ctx, dataset: str, day: dt.date) -> dict:
    """The day's lists (the `dataset` silver partition) into the scheduler's holiday file, then
    `trading_calendar`; where NSE and the calendar library disagree is logged and returned."""
    stats = refresh_calendar_file(ctx.lake, day, dataset)
    for difference in stats["differences"]:
        log.warning("NSE and the calendar library disagree: %s", difference)
    with ctx.database() as (client, database):
        return stats | load_trading_calendar(client, ctx.lake, database)
