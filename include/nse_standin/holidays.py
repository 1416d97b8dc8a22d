"""NSE's holiday master for the generated market, as `/api/holiday-master?type=trading` serves it.

The API answers the current year only, so each trading day writes its year's list where the
stand-in serves it (`api/holiday-master/type=trading.json`) and after a range only the last
year's is left, as on NSE. The dates are NSE's own where the trading calendar ships its list for
a segment and year; for other years every weekday the calendar library closes is listed, under
a plain description, for CM, FO, CD and COM. The JSON's shape is spelled out here: one list per
segment code, entries with `tradingDate` (`26-Jan-2025`), `weekDay`, `description`,
`morning_session`, `evening_session` and `Sr_no`, indented by two spaces like NSE's answer.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from pathlib import Path

from include.nse.calendar import Holiday, load_calendar
from include.nse_standin.market import Session, Written, nse_date
from include.nse_standin.server import api_file

ENDPOINT = "holiday-master"
PARAMS = {"type": "trading"}
#: Segments listed for a year the shipped lists do not cover.
FALLBACK_SEGMENTS = ("CD", "CM", "COM", "FO")
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def year_holidays(year: int) -> dict[str, list[Holiday]]:
    """Segment -> its holidays in `year`, by date."""
    calendar = load_calendar()
    by_segment = {
        segment: calendar.listed(segment, year)
        for segment in calendar.segments
        if year in calendar.covered_years(segment)
    }
    if by_segment:
        return by_segment
    days = (dt.date(year, 1, 1) + dt.timedelta(days=i) for i in range(366))
    closed = [
        d
        for d in days
        if d.year == year and d.weekday() < 5 and not calendar.library_is_trading_day(d)
    ]
    return {
        segment: [Holiday(d, segment, "Trading holiday") for d in closed]
        for segment in FALLBACK_SEGMENTS
    }


@functools.cache
def holiday_master(year: int) -> bytes:
    """The API's answer in `year`."""

    def entry(number: int, h: Holiday) -> dict:
        return {
            "tradingDate": nse_date(h.date),
            "weekDay": WEEKDAYS[h.date.weekday()],
            "description": h.description,
            "morning_session": h.morning_session,
            "evening_session": h.evening_session,
            "Sr_no": number,
        }

    answer = {
        segment: [entry(n, h) for n, h in enumerate(holidays, start=1)]
        for segment, holidays in year_holidays(year).items()
    }
    return json.dumps(answer, indent=2).encode()


def write_holidays(session: Session, out: Path) -> list[Written]:
    year = session.trade_date.year
    path = api_file(out, ENDPOINT, PARAMS)
    data = holiday_master(year)
    if not path.exists() or path.read_bytes() != data:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return [Written(path, sum(len(v) for v in json.loads(data).values()))]
