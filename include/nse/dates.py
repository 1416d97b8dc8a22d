"""NSE's dates, read and written one way everywhere, whatever the process locale.

NSE spells a day `05-JUL-2024` (archive CSVs), `05-Jul-2024` (the API, web exports) or
`01-June-2021` (footnotes of the monthly index archives), and a moment `23-Aug-2019 15:30:00`
in Mumbai time. `strftime("%b")` and `strptime("%b")` follow the process locale, so month names
go through the table here instead.
"""

from __future__ import annotations

import datetime as dt
import re
from email.utils import parsedate_to_datetime
from zoneinfo import ZoneInfo

import polars as pl

IST_NAME = "Asia/Kolkata"
#: Mumbai's time zone: NSE's trade dates, timestamps and schedules are all in it.
IST = ZoneInfo(IST_NAME)
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_FULL_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
#: Upper-case month name, short or full -> its number.
MONTH_NUMBER = {
    name.upper(): number
    for names in (MONTHS, _FULL_MONTHS)
    for number, name in enumerate(names, start=1)
}
_NSE_DATE = re.compile(r"(\d{1,2})-([A-Za-z]{3,9})-(\d{4})")
EXAMPLE = "05-Jul-2024"
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def month_code(day: dt.date) -> str:
    """NSE's upper-case month in archive paths: JUL."""
    return MONTHS[day.month - 1].upper()


def nse_date_text(day: dt.date) -> str:
    """A day as NSE's API writes it and its `expiry=` parameter takes it: 05-Jul-2024."""
    return f"{day:%d}-{MONTHS[day.month - 1]}-{day:%Y}"


def nse_date(text: object) -> dt.date:
    """`05-JUL-2024`, `05-Jul-2024` or `01-June-2021` as a date; ValueError naming the text."""
    match = _NSE_DATE.fullmatch(str(text).strip()) if isinstance(text, str) else None
    try:
        if match is None:
            raise ValueError
        day, month, year = match.groups()
        return dt.date(int(year), MONTH_NUMBER[month.upper()], int(day))
    except (KeyError, ValueError):
        raise ValueError(f"expected a date like {EXAMPLE}, found {text!r}") from None


def nse_datetime(text: object) -> dt.datetime:
    """`23-Aug-2019 15:30:00` (Mumbai time) as an aware datetime in IST."""
    try:
        day, clock = str(text).split(" ")
        hour, minute, second = (int(part) for part in clock.split(":"))
        return dt.datetime.combine(nse_date(day), dt.time(hour, minute, second), IST)
    except ValueError:
        raise ValueError(f"expected a time like {EXAMPLE} 15:30:00, found {text!r}") from None


def parse_dates(text: pl.Expr) -> pl.Expr:
    """The vector form of `nse_date` for a text column, also taking ISO `2024-07-08` (UDiFF);
    null where the text is none of these (the caller names the row)."""
    parts = text.str.strip_chars().str.extract_groups(r"^(\d{1,2})-([A-Za-z]{3,9})-(\d{4})$")
    month = parts.struct[1].str.to_uppercase().replace_strict(MONTH_NUMBER, default=None)
    spelled = pl.format(
        "{}-{}-{}",
        parts.struct[2],
        month.cast(pl.String).str.zfill(2),
        parts.struct[0].str.zfill(2),
    ).str.strptime(pl.Date, "%Y-%m-%d", strict=False)
    return pl.coalesce(spelled, text.str.strptime(pl.Date, "%Y-%m-%d", strict=False))


def ist_date(moment: dt.datetime) -> dt.date:
    """The day a moment falls on in Mumbai."""
    return moment.astimezone(IST).date()


def http_date_ist(header: str | None) -> dt.date | None:
    """The Mumbai day of an HTTP date header (Last-Modified); None when absent or unreadable."""
    if not header:
        return None
    try:
        return ist_date(parsedate_to_datetime(header))
    except (TypeError, ValueError):
        return None


def iso_date(value: object, name: str = "trade_date") -> dt.date:
    """`value`, a date or its `YYYY-MM-DD` text, as a date; ValueError naming `name` and the
    value for anything else. Dates given from outside (params, arguments) come through here
    before they are used anywhere, a query included. A datetime is refused: which day it is
    depends on a time zone the caller has to choose."""
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    if isinstance(value, str) and _ISO_DATE.fullmatch(value):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            pass
    raise ValueError(f"{name}: expected a date like 2024-07-05, found {value!r}")


def trade_date_of(param: object, moment: dt.datetime) -> dt.date:
    """The trade date a run is for: its `trade_date` param when set, else its moment's Mumbai
    day (a scheduled run's logical date is its trading day at the scheduled time)."""
    if param:
        return iso_date(param)
    return ist_date(moment)
