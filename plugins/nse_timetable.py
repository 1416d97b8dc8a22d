"""Timetables on NSE's trading calendar: runs on trading days only, in Mumbai's time.

`TradingDayTimetable` makes one run per trading day of a segment, for end-of-day files;
`TradingSessionTimetable` makes a run every few minutes while the market is open, for intraday
snapshots. Holidays make no runs, weekend sessions (Budget Saturdays, Muhurat) make theirs, and
`airflow backfill create` over a range makes exactly one run per trading day (or slot): it walks
`next_dagrun_info` from the range's start, which these implement over the calendar.

Trading days come from `include.nse.calendar.default_calendar()`: packaged NSE lists and special
sessions, the library calendar, and the lists the `nse_trading_calendar` DAG refreshed into the
lake. No network I/O happens here; the scheduler calls these for every run it plans.

A run's logical date is its trading day at the scheduled time in Mumbai, so the tasks' trade
date (`include.nse.dates.trade_date_of`: the logical date's date in Asia/Kolkata) is that
trading day.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any, NamedTuple

import pendulum
from airflow.plugins_manager import AirflowPlugin
from airflow.timetables.base import DagRunInfo, DataInterval, Timetable

if TYPE_CHECKING:
    from airflow.timetables.base import TimeRestriction
    from pendulum import DateTime

IST = "Asia/Kolkata"
#: How far to look for the next or previous run: longer than any market closure.
_SEARCH_DAYS = 400


class _Point(NamedTuple):
    """One run: its logical date, and when it may start (later after a late special session)."""

    logical: DateTime
    run_after: DateTime

    def info(self) -> DagRunInfo:
        return DagRunInfo(
            run_after=self.run_after, data_interval=DataInterval(self.logical, self.run_after)
        )


def _now() -> DateTime:
    return pendulum.now("UTC")


def _calendar():
    from include.nse.calendar import default_calendar

    return default_calendar()


class _CalendarTimetable(Timetable):
    """Runs at points on trading days; subclasses say which points a day has."""

    def __init__(self, segment: str, timezone: str) -> None:
        self.segment = segment
        self.timezone = pendulum.timezone(timezone)

    def _points(self, day: dt.date) -> list[_Point]:
        raise NotImplementedError

    def _at(self, day: dt.date, time: dt.time) -> DateTime:
        local = pendulum.datetime(
            day.year, day.month, day.day, time.hour, time.minute, tz=self.timezone
        )
        return local.in_timezone("UTC")

    def _local_day(self, moment: dt.datetime) -> dt.date:
        return pendulum.instance(moment).in_timezone(self.timezone).date()

    def _first_after(self, moment: dt.datetime, *, inclusive: bool) -> _Point | None:
        """The first point whose logical date is after `moment` (or at it, when inclusive)."""
        day = self._local_day(moment)
        for offset in range(_SEARCH_DAYS):
            for point in self._points(day + dt.timedelta(days=offset)):
                if point.logical > moment or (inclusive and point.logical == moment):
                    return point
        return None

    def _latest_due(self, now: dt.datetime) -> _Point | None:
        """The last point that may already have run at `now`."""
        day = self._local_day(now)
        for offset in range(_SEARCH_DAYS):
            for point in reversed(self._points(day - dt.timedelta(days=offset))):
                if point.run_after <= now:
                    return point
        return None

    def next_dagrun_info(
        self,
        *,
        last_automated_data_interval: DataInterval | None,
        restriction: TimeRestriction,
    ) -> DagRunInfo | None:
        """The point after the last run, not before `earliest`; without catchup, the latest due.

        As CronTriggerTimetable does: with catchup off a DAG runs the latest point that is due
        instead of every missed one; with it on (and in backfills) every point in turn.
        """
        candidates = []
        if last_automated_data_interval is not None:
            candidates.append(
                self._first_after(last_automated_data_interval.start, inclusive=False)
            )
        if restriction.earliest is not None:
            candidates.append(self._first_after(restriction.earliest, inclusive=True))
        if not restriction.catchup or not candidates:
            candidates.append(self._latest_due(_now()))
        points = [p for p in candidates if p is not None]
        if not points:
            return None
        point = max(points, key=lambda p: p.logical)
        if restriction.latest is not None and point.logical > restriction.latest:
            return None
        return point.info()

    def infer_manual_data_interval(self, *, run_after: DateTime) -> DataInterval:
        """A manual run is for the moment it was triggered (its `trade_date` param may say more)."""
        return DataInterval.exact(run_after)

    def _serialize_common(self) -> dict[str, Any]:
        return {"segment": self.segment, "timezone": self.timezone.name}

    def __eq__(self, other: object) -> bool:
        # By name: the plugin manager and DAG files may each import this module once.
        return (
            isinstance(other, Timetable)
            and type(other).__qualname__ == type(self).__qualname__
            and other.serialize() == self.serialize()
        )

    def __hash__(self) -> int:
        return hash((type(self).__name__, *sorted(self.serialize().items())))


class TradingDayTimetable(_CalendarTimetable):
    """One run per trading day of `segment`, at `at` in `timezone` (Asia/Kolkata).

    On a special session that closes later than the regular 15:30 (a Muhurat evening), the run
    waits as long after that close as `at` is after 15:30, so the day's files are out; its
    logical date stays at `at` on the trading day.
    """

    def __init__(
        self, at: dt.time = dt.time(18, 30), segment: str = "CM", timezone: str = IST
    ) -> None:
        super().__init__(segment, timezone)
        self.at = at

    def _points(self, day: dt.date) -> list[_Point]:
        from include.nse.calendar import REGULAR_CLOSE

        calendar = _calendar()
        if not calendar.is_trading_day(day, self.segment):
            return []
        logical = self._at(day, self.at)
        delay = dt.timedelta()
        special = calendar.special_session(day, self.segment)
        if special is not None and special.close is not None and special.close > REGULAR_CLOSE:
            closes_late = dt.datetime.combine(day, special.close)
            delay = closes_late - dt.datetime.combine(day, REGULAR_CLOSE)
        return [_Point(logical, logical + delay)]

    @property
    def summary(self) -> str:
        return f"NSE {self.segment} trading days at {self.at:%H:%M} {self.timezone.name}"

    @property
    def description(self) -> str:
        return (
            f"Once per NSE {self.segment} trading day at {self.at:%H:%M} {self.timezone.name}: "
            "no runs on holidays, runs on weekend special sessions."
        )

    def serialize(self) -> dict[str, Any]:
        return {"at": self.at.isoformat("minutes"), **self._serialize_common()}

    @classmethod
    def deserialize(cls, data: dict[str, Any]) -> Timetable:
        return cls(
            at=dt.time.fromisoformat(data["at"]), segment=data["segment"], timezone=data["timezone"]
        )


class TradingSessionTimetable(_CalendarTimetable):
    """A run every `every` from `start` to `end` (both included) on trading days of `segment`.

    On a special session with known hours (a Muhurat hour, a short Saturday session) the slots
    are those inside both windows; a special session whose hours are not recorded gets none.
    """

    def __init__(
        self,
        every: dt.timedelta = dt.timedelta(minutes=5),
        start: dt.time = dt.time(9, 15),
        end: dt.time = dt.time(15, 30),
        segment: str = "FO",
        timezone: str = IST,
    ) -> None:
        super().__init__(segment, timezone)
        self.every = every
        self.start = start
        self.end = end

    def validate(self) -> None:
        from airflow.exceptions import AirflowTimetableInvalid

        if self.every <= dt.timedelta():
            raise AirflowTimetableInvalid(f"every must be positive, not {self.every}")
        if self.end < self.start:
            raise AirflowTimetableInvalid(f"end {self.end} is before start {self.start}")

    def _points(self, day: dt.date) -> list[_Point]:
        calendar = _calendar()
        if not calendar.is_trading_day(day, self.segment):
            return []
        first, last = self.start, self.end
        special = calendar.special_session(day, self.segment)
        if special is not None:
            if special.open is None or special.close is None:
                return []
            first, last = max(first, special.open), min(last, special.close)
        slot, close = self._at(day, first), self._at(day, last)
        points = []
        while slot <= close:
            points.append(_Point(slot, slot))
            slot = slot + self.every
        return points

    @property
    def summary(self) -> str:
        minutes = self.every.total_seconds() / 60
        every = f"{minutes:g} min" if minutes < 60 else f"{minutes / 60:g} h"
        return (
            f"NSE {self.segment} every {every}, {self.start:%H:%M}-{self.end:%H:%M} "
            f"{self.timezone.name}, trading days"
        )

    @property
    def description(self) -> str:
        return (
            f"Every {self.every} from {self.start:%H:%M} to {self.end:%H:%M} "
            f"{self.timezone.name} on NSE {self.segment} trading days only."
        )

    def serialize(self) -> dict[str, Any]:
        return {
            "every": self.every.total_seconds(),
            "start": self.start.isoformat("minutes"),
            "end": self.end.isoformat("minutes"),
            **self._serialize_common(),
        }

    @classmethod
    def deserialize(cls, data: dict[str, Any]) -> Timetable:
        return cls(
            every=dt.timedelta(seconds=data["every"]),
            start=dt.time.fromisoformat(data["start"]),
            end=dt.time.fromisoformat(data["end"]),
            segment=data["segment"],
            timezone=data["timezone"],
        )


class NSETimetablesPlugin(AirflowPlugin):
    """Registers the timetables, so the DAG processor may serialize DAGs that use them."""

    name = "nse_timetables"
    timetables = [TradingDayTimetable, TradingSessionTimetable]
