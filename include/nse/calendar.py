"""NSE's trading calendar: which days each segment trades, from data, never from "Monday to Friday".

Three sources, in order of precedence:

1. **Special sessions** (`data/special_sessions.csv`): trading on a day that is otherwise closed,
   such as Budget Saturdays (2015-02-28, 2020-02-01, 2025-02-01), live sessions for the
   disaster-recovery drills (Saturday 2024-01-20, 2024-03-02, 2024-05-18) and the one-hour Muhurat
   session on Diwali (even on a Sunday, e.g. 2019-10-27). NSE publishes a bhavcopy for each.
2. **NSE's holiday lists** per segment and year, shipped in `data/holidays/<year>.csv` and
   refreshed from NSE's `/api/holiday-master?type=trading` by the `nse_trading_calendar` DAG into
   the lake (`REFRESHED_FILE`). Where a list covers a segment's year, it decides: weekdays trade
   unless listed. A commodity (COM) holiday whose morning or evening session NSE marks `Open` is
   a half day and still trades.
3. **exchange-calendars' XBOM** (BSE, from 1997) for the years no NSE list covers. BSE and NSE
   close on the same days: XBOM matches NSE's CM and FO lists for every year shipped here, and
   `differences` reports any year where they part. XBOM knows nothing of other segments, so CD,
   COM and the rest fall back to the equity calendar outside the years their lists cover.

Beyond the library's last year and without a list, weekdays are assumed to trade; NSE publishes
next year's list in December, and the refresh picks it up.

Nothing here touches the network: the scheduler asks this module for every run it creates.
"""

from __future__ import annotations

import csv
import datetime as dt
import functools
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

DATA_DIR = Path(__file__).resolve().parent / "data"
#: Where the refresh DAG writes NSE's latest lists, relative to the lake root.
REFRESHED_FILE = Path("gold") / "trading_calendar" / "holidays.csv"
#: Names an explicit holiday file to use instead of the lake's.
HOLIDAYS_FILE_ENV = "NSE_HOLIDAYS_FILE"
#: Columns of a holiday file, packaged or refreshed.
HOLIDAY_COLUMNS = ("date", "segment", "description", "morning_session", "evening_session")
#: The calendar library's code for BSE, which shares NSE's holidays.
LIBRARY_CALENDAR = "XBOM"
LIBRARY_START = dt.date(1997, 1, 1)
#: When the equity and equity-derivative sessions close on a regular day.
REGULAR_CLOSE = dt.time(15, 30)


@dataclass(frozen=True)
class Holiday:
    """A day NSE lists as a holiday for one segment (COM lists half days with their sessions)."""

    date: dt.date
    segment: str
    description: str
    morning_session: str | None = None
    evening_session: str | None = None

    @property
    def closed(self) -> bool:
        """Whether no session trades: a COM half day (a session `Open`) still trades."""
        return "Open" not in (self.morning_session, self.evening_session)


@dataclass(frozen=True)
class SpecialSession:
    """Trading on a day that is otherwise closed; hours where NSE's circular gave them."""

    date: dt.date
    segments: frozenset[str]
    kind: str
    description: str
    open: dt.time | None = None
    close: dt.time | None = None


class DayInfo(NamedTuple):
    is_trading_day: bool
    #: regular, weekend, holiday, half_day, or a special session's kind (budget, muhurat...).
    kind: str
    description: str | None
    #: What decided: special_session, nse_list, library, or weekday (outside every source).
    source: str


def read_holidays(path: Path) -> list[Holiday]:
    """Holidays from a CSV with `HOLIDAY_COLUMNS` (the packaged files and the lake's)."""
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = set(HOLIDAY_COLUMNS) - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{path}: header lacks {', '.join(sorted(missing))}")
        return [
            Holiday(
                dt.date.fromisoformat(row["date"]),
                row["segment"],
                row["description"],
                row["morning_session"] or None,
                row["evening_session"] or None,
            )
            for row in reader
        ]


def write_holidays(holidays: Iterable[Holiday], path: Path) -> Path:
    """Write holidays in `read_holidays`' format, atomically: the scheduler may be reading."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(HOLIDAY_COLUMNS)
        for h in sorted(holidays, key=lambda h: (h.date, h.segment)):
            writer.writerow(
                [
                    h.date.isoformat(),
                    h.segment,
                    h.description,
                    h.morning_session or "",
                    h.evening_session or "",
                ]
            )
    os.replace(tmp, path)
    return path


def read_special_sessions(path: Path = DATA_DIR / "special_sessions.csv") -> list[SpecialSession]:
    def time_or_none(text: str) -> dt.time | None:
        return dt.time.fromisoformat(text) if text else None

    with open(path, newline="", encoding="utf-8") as f:
        return [
            SpecialSession(
                dt.date.fromisoformat(row["date"]),
                frozenset(row["segments"].split()),
                row["kind"],
                row["description"],
                time_or_none(row["open"]),
                time_or_none(row["close"]),
            )
            for row in csv.DictReader(f)
        ]


def packaged_holidays() -> list[Holiday]:
    """NSE's lists shipped with the library, one file per year."""
    return [
        h for path in sorted((DATA_DIR / "holidays").glob("*.csv")) for h in read_holidays(path)
    ]


@functools.cache
def library_sessions() -> tuple[frozenset[dt.date], dt.date, dt.date]:
    """XBOM's sessions, and its first and last day; loaded once (pandas makes it take seconds)."""
    import exchange_calendars

    calendar = exchange_calendars.get_calendar(LIBRARY_CALENDAR, start=LIBRARY_START.isoformat())
    sessions = frozenset(day.date() for day in calendar.sessions)
    return sessions, calendar.first_session.date(), calendar.last_session.date()


def _days(start: dt.date, end: dt.date) -> Iterable[dt.date]:
    return (start + dt.timedelta(days=i) for i in range((end - start).days + 1))


class TradingCalendar:
    """Answers whether and when a segment trades. Segments are NSE's codes (CM, FO, CD, COM...)."""

    def __init__(
        self,
        holidays: Iterable[Holiday],
        special_sessions: Iterable[SpecialSession] = (),
        *,
        use_library: bool = True,
    ) -> None:
        self._holidays: dict[tuple[str, dt.date], Holiday] = {}
        for h in holidays:
            self._holidays[(h.segment, h.date)] = h
        #: (segment, year) pairs an NSE list covers.
        self._covered = {(segment, day.year) for segment, day in self._holidays}
        self._special = {(segment, s.date): s for s in special_sessions for segment in s.segments}
        self._use_library = use_library

    # ---- questions -------------------------------------------------------------------------
    def is_trading_day(self, day: dt.date, segment: str = "CM") -> bool:
        return self.classify(day, segment).is_trading_day

    def classify(self, day: dt.date, segment: str = "CM") -> DayInfo:
        """Whether the segment trades on `day`, what kind of day it is, and which source said so."""
        if special := self._special.get((segment, day)):
            return DayInfo(True, special.kind, special.description, "special_session")
        if (segment, day.year) in self._covered:
            holiday = self._holidays.get((segment, day))
            description = holiday.description if holiday else None
            if day.weekday() >= 5:
                return DayInfo(False, "weekend", description, "nse_list")
            if holiday is None:
                return DayInfo(True, "regular", None, "nse_list")
            if holiday.closed:
                return DayInfo(False, "holiday", description, "nse_list")
            return DayInfo(True, "half_day", description, "nse_list")
        source = "library" if self._in_library(day) else "weekday"
        if self.library_is_trading_day(day):
            return DayInfo(True, "regular", None, source)
        return DayInfo(False, "weekend" if day.weekday() >= 5 else "holiday", None, source)

    def _in_library(self, day: dt.date) -> bool:
        if not self._use_library:
            return False
        _, first, last = library_sessions()
        return first <= day <= last

    def library_is_trading_day(self, day: dt.date) -> bool:
        """The library's answer, or a weekday's outside its years (or without it)."""
        if self._in_library(day):
            return day in library_sessions()[0]
        return day.weekday() < 5

    def trading_days(self, start: dt.date, end: dt.date, segment: str = "CM") -> list[dt.date]:
        """Trading days from `start` to `end`, both included."""
        return [day for day in _days(start, end) if self.is_trading_day(day, segment)]

    def next_trading_day(self, day: dt.date, segment: str = "CM") -> dt.date:
        """The first trading day after `day`."""
        return self._step(day, segment, 1)

    def previous_trading_day(self, day: dt.date, segment: str = "CM") -> dt.date:
        """The last trading day before `day`."""
        return self._step(day, segment, -1)

    def _step(self, day: dt.date, segment: str, direction: int) -> dt.date:
        # No market closes for a month; the bound only stops a typo'd segment looping forever.
        for offset in range(1, 32):
            candidate = day + dt.timedelta(days=direction * offset)
            if self.is_trading_day(candidate, segment):
                return candidate
        raise ValueError(f"no {segment} trading day within a month of {day}")

    def special_session(self, day: dt.date, segment: str = "CM") -> SpecialSession | None:
        return self._special.get((segment, day))

    def holiday(self, day: dt.date, segment: str = "CM") -> Holiday | None:
        """NSE's listing of `day` for the segment, if it lists it (even where a session trades)."""
        return self._holidays.get((segment, day))

    def listed(self, segment: str, year: int) -> list[Holiday]:
        """NSE's list for a segment's year, by date; empty where no list covers it."""
        return sorted(
            (h for (s, day), h in self._holidays.items() if s == segment and day.year == year),
            key=lambda h: h.date,
        )

    @property
    def segments(self) -> list[str]:
        """Segments some NSE list covers."""
        return sorted({segment for segment, _ in self._covered})

    def covered_years(self, segment: str = "CM") -> list[int]:
        """Years an NSE list covers for the segment."""
        return sorted(year for s, year in self._covered if s == segment)

    # ---- reconciliation --------------------------------------------------------------------
    def differences(self, segment: str = "CM") -> list[dict]:
        """Weekdays where NSE's list for a covered year and the library disagree.

        Special sessions are left out: NSE lists Muhurat days as holidays, and the library
        counts some special Saturdays, but both are settled by the special-session data.
        """
        found = []
        for year in self.covered_years(segment):
            for day in _days(dt.date(year, 1, 1), dt.date(year, 12, 31)):
                if day.weekday() >= 5 or (segment, day) in self._special:
                    continue
                nse = self.is_trading_day(day, segment)
                library = self.library_is_trading_day(day)
                if nse != library:
                    holiday = self._holidays.get((segment, day))
                    found.append(
                        {
                            "date": day.isoformat(),
                            "segment": segment,
                            "nse": "trading" if nse else "holiday",
                            "library": "trading" if library else "holiday",
                            "description": holiday.description if holiday else None,
                        }
                    )
        return found


def refreshed_file(lake_root: Path | None = None) -> Path:
    """The holiday file the scheduler reads: `NSE_HOLIDAYS_FILE`, else the lake's."""
    if explicit := os.environ.get(HOLIDAYS_FILE_ENV):
        return Path(explicit)
    if lake_root is None:
        from include.nse.config import Settings

        lake_root = Settings.from_env().lake_root
    return Path(lake_root) / REFRESHED_FILE


def load_calendar(refreshed: Path | None = None) -> TradingCalendar:
    """The packaged lists and special sessions, with a refreshed file's lists on top.

    A refreshed list replaces the packaged one for each (segment, year) it covers, so a year NSE
    amended mid-way (a holiday added for an election) is taken whole from NSE's latest answer.
    """
    holidays = packaged_holidays()
    if refreshed is not None and refreshed.is_file():
        newer = read_holidays(refreshed)
        replaced = {(h.segment, h.date.year) for h in newer}
        holidays = [h for h in holidays if (h.segment, h.date.year) not in replaced] + newer
    return TradingCalendar(holidays, read_special_sessions())


_cache: dict[tuple[str, float | None], TradingCalendar] = {}
_cache_lock = threading.Lock()


def default_calendar() -> TradingCalendar:
    """The calendar every DAG and the timetables use, reloaded when the refreshed file changes.

    One `stat` a call: the scheduler keeps running while the refresh DAG writes a new file.
    """
    path = refreshed_file()
    try:
        stamp = path.stat().st_mtime
    except OSError:
        stamp = None
    key = (str(path), stamp)
    with _cache_lock:
        if key not in _cache:
            _cache.clear()
            _cache[key] = load_calendar(path if stamp is not None else None)
        return _cache[key]


def is_trading_day(day: dt.date, segment: str = "CM") -> bool:
    return default_calendar().is_trading_day(day, segment)


def trading_days(start: dt.date, end: dt.date, segment: str = "CM") -> list[dt.date]:
    return default_calendar().trading_days(start, end, segment)


def next_trading_day(day: dt.date, segment: str = "CM") -> dt.date:
    return default_calendar().next_trading_day(day, segment)


def previous_trading_day(day: dt.date, segment: str = "CM") -> dt.date:
    return default_calendar().previous_trading_day(day, segment)
