"""The trading-day and trading-session timetables, through Airflow's timetable API."""

from __future__ import annotations

import datetime as dt
import itertools
import sys
from pathlib import Path

import nse_timetable
import pendulum
import pytest
from nse_timetable import TradingDayTimetable, TradingSessionTimetable

IST = "Asia/Kolkata"
D = dt.date


@pytest.fixture(autouse=True)
def packaged_calendar(monkeypatch, tmp_path):
    """The packaged calendar only: no refreshed file from a lake."""
    monkeypatch.setenv("NSE_HOLIDAYS_FILE", str(tmp_path / "absent.csv"))


def ist(*args) -> pendulum.DateTime:
    return pendulum.datetime(*args, tz=IST)


def restriction(earliest=None, latest=None, catchup=True):
    from airflow.timetables.base import TimeRestriction

    return TimeRestriction(earliest, latest, catchup)


def runs(timetable, earliest, latest) -> list:
    """Every run from `earliest` to `latest`, walking `next_dagrun_info` as backfills do."""
    found, info = [], None
    while True:
        info = timetable.next_dagrun_info(
            last_automated_data_interval=info.data_interval if info else None,
            restriction=restriction(earliest, latest),
        )
        if info is None:
            return found
        found.append(info)


def local(info) -> str:
    return info.logical_date.in_timezone(IST).strftime("%Y-%m-%d %H:%M")


class TestTradingDay:
    def test_a_week_with_a_holiday(self):
        """The week of Mahashivratri 2025: runs Mon, Tue, Thu, Fri at 18:30, none on Wed."""
        found = runs(TradingDayTimetable(), ist(2025, 2, 24), ist(2025, 3, 2, 23, 59))
        assert [local(i) for i in found] == [
            "2025-02-24 18:30",
            "2025-02-25 18:30",
            "2025-02-27 18:30",
            "2025-02-28 18:30",
        ]
        assert all(i.run_after == i.logical_date for i in found)

    def test_budget_saturday_runs(self):
        """Saturday 2025-02-01 has a run; the Sunday after has none."""
        found = runs(TradingDayTimetable(), ist(2025, 1, 31), ist(2025, 2, 3, 23, 59))
        assert [local(i)[:10] for i in found] == ["2025-01-31", "2025-02-01", "2025-02-03"]

    def test_backfill_one_run_per_trading_day(self):
        """From 2025-02-01 to 2025-03-07: one run per CM trading day, 25 in all."""
        from include.nse.calendar import load_calendar

        found = runs(TradingDayTimetable(), ist(2025, 2, 1), ist(2025, 3, 7, 23, 59))
        days = [i.logical_date.in_timezone(IST).date() for i in found]
        assert days == load_calendar().trading_days(D(2025, 2, 1), D(2025, 3, 7))
        assert len(days) == len(set(days)) == 25
        assert D(2025, 2, 26) not in days and D(2025, 2, 1) in days

    def test_range_ends_are_honoured(self):
        """A start after the day's run time begins the next day; a latest before it ends."""
        found = runs(TradingDayTimetable(), ist(2025, 2, 24, 19), ist(2025, 2, 27, 18))
        assert [local(i) for i in found] == ["2025-02-25 18:30"]

    def test_trade_date_is_the_trading_day(self):
        """The logical date's date in Mumbai is the trading day the tasks load, unless the
        run's `trade_date` param names another."""
        from include.nse.dates import trade_date_of
        from include.nse_airflow.tasks import trade_date

        info = TradingDayTimetable(at=dt.time(19)).next_dagrun_info(
            last_automated_data_interval=None, restriction=restriction(ist(2025, 2, 1))
        )
        assert info.logical_date == pendulum.datetime(2025, 2, 1, 13, 30, tz="UTC")
        assert trade_date({"logical_date": info.logical_date}) == D(2025, 2, 1)
        assert trade_date_of(None, info.logical_date) == D(2025, 2, 1)
        # 18:30 UTC is already the next day in Mumbai.
        late = pendulum.datetime(2025, 1, 31, 18, 30, tz="UTC")
        assert trade_date({"logical_date": late, "params": {"trade_date": None}}) == D(2025, 2, 1)
        chosen = {"logical_date": info.logical_date, "params": {"trade_date": "2024-07-05"}}
        assert trade_date(chosen) == D(2024, 7, 5)

    def test_muhurat_run_waits_for_the_session(self):
        """Diwali 2024's session closed at 19:00, so the 18:30 run waits until 22:00."""
        info = TradingDayTimetable().next_dagrun_info(
            last_automated_data_interval=None, restriction=restriction(ist(2024, 11, 1))
        )
        assert local(info) == "2024-11-01 18:30"
        assert info.run_after.in_timezone(IST) == ist(2024, 11, 1, 22)

    def test_segments_differ(self):
        """CD does not run on Budget Saturday or on its own RBI holiday 2025-02-19."""
        found = runs(TradingDayTimetable(segment="CD"), ist(2025, 2, 1), ist(2025, 2, 20, 23, 59))
        days = [local(i)[:10] for i in found]
        assert "2025-02-01" not in days and "2025-02-19" not in days
        assert "2025-02-18" in days


class TestCatchup:
    def test_catchup_off_runs_the_latest_due(self, monkeypatch):
        """After a pause, catchup off runs the latest due trading day, not the missed ones."""
        monkeypatch.setattr(nse_timetable, "_now", lambda: ist(2025, 2, 28, 10))
        table = TradingDayTimetable()
        last = table.next_dagrun_info(
            last_automated_data_interval=None, restriction=restriction(ist(2025, 2, 20))
        )
        nxt = table.next_dagrun_info(
            last_automated_data_interval=last.data_interval,
            restriction=restriction(ist(2024, 1, 1), catchup=False),
        )
        assert local(last) == "2025-02-20 18:30"
        assert local(nxt) == "2025-02-27 18:30"

    def test_catchup_off_first_run_on_a_weekend(self, monkeypatch):
        """A new DAG on a Sunday starts with Friday's run (the latest due)."""
        monkeypatch.setattr(nse_timetable, "_now", lambda: ist(2025, 3, 2, 12))
        info = TradingDayTimetable().next_dagrun_info(
            last_automated_data_interval=None,
            restriction=restriction(ist(2024, 1, 1), catchup=False),
        )
        assert local(info) == "2025-02-28 18:30"

    def test_catchup_on_runs_every_missed_day(self, monkeypatch):
        """With catchup on, the run after 2025-02-20 is the next trading day."""
        monkeypatch.setattr(nse_timetable, "_now", lambda: ist(2025, 2, 28, 10))
        table = TradingDayTimetable()
        last = table.next_dagrun_info(
            last_automated_data_interval=None, restriction=restriction(ist(2025, 2, 20))
        )
        nxt = table.next_dagrun_info(
            last_automated_data_interval=last.data_interval,
            restriction=restriction(ist(2024, 1, 1), catchup=True),
        )
        assert local(nxt) == "2025-02-21 18:30"

    def test_manual_run_is_for_its_moment(self):
        """A manual run's data interval is the moment it was triggered."""
        moment = pendulum.datetime(2024, 7, 5, 13, tz="UTC")
        interval = TradingDayTimetable().infer_manual_data_interval(run_after=moment)
        assert interval.start == interval.end == moment


class TestSession:
    def test_a_trading_day_from_0915_to_1530(self):
        """Every 5 minutes from 09:15 to 15:30, both included: 76 slots."""
        found = runs(TradingSessionTimetable(), ist(2025, 2, 25), ist(2025, 2, 25, 23))
        assert len(found) == 76
        assert (local(found[0]), local(found[-1])) == ("2025-02-25 09:15", "2025-02-25 15:30")
        gaps = {
            (b.logical_date - a.logical_date).as_timedelta() for a, b in itertools.pairwise(found)
        }
        assert gaps == {dt.timedelta(minutes=5)}

    def test_none_on_holidays_and_weekends(self):
        """Mahashivratri and the weekend before it have no slots: Tuesday's last, then Thursday."""
        found = runs(TradingSessionTimetable(), ist(2025, 2, 22), ist(2025, 2, 27, 23))
        days = sorted({local(i)[:10] for i in found})
        assert days == ["2025-02-24", "2025-02-25", "2025-02-27"]

    def test_budget_saturday_has_a_session(self):
        """2025-02-01 has the full session for FO."""
        found = runs(TradingSessionTimetable(), ist(2025, 2, 1), ist(2025, 2, 1, 23))
        assert len(found) == 76

    def test_muhurat_slots_inside_its_hour(self):
        """Diwali 2025's Muhurat hour, 13:45 to 14:45, inside the session window: 13 slots."""
        found = runs(TradingSessionTimetable(), ist(2025, 10, 21), ist(2025, 10, 21, 23))
        assert (len(found), local(found[0]), local(found[-1])) == (
            13,
            "2025-10-21 13:45",
            "2025-10-21 14:45",
        )

    def test_invalid_arguments_refused(self):
        """A zero step or an end before the start is refused by validate()."""
        from airflow.exceptions import AirflowTimetableInvalid

        with pytest.raises(AirflowTimetableInvalid):
            TradingSessionTimetable(every=dt.timedelta()).validate()
        with pytest.raises(AirflowTimetableInvalid):
            TradingSessionTimetable(start=dt.time(15), end=dt.time(9)).validate()


@pytest.fixture()
def plugin_manager():
    """Airflow's plugin manager imports every module in plugins/ again, into sys.modules; put
    back the session's own modules afterwards, so later tests see one copy of each."""
    from tests.conftest import PROJECT_ROOT

    plugins = PROJECT_ROOT / "plugins"

    def ours() -> dict:
        return {
            name: module
            for name, module in sys.modules.items()
            if Path(getattr(module, "__file__", None) or "/").parent == plugins
        }

    before = ours()
    yield
    for name in ours():
        if name in before:
            sys.modules[name] = before[name]
        else:
            del sys.modules[name]


@pytest.mark.usefixtures("plugin_manager")
class TestAirflowIntegration:
    @pytest.mark.parametrize(
        "timetable",
        [
            TradingDayTimetable(at=dt.time(19), segment="FO"),
            TradingSessionTimetable(
                every=dt.timedelta(minutes=3), start=dt.time(9), end=dt.time(17), segment="CD"
            ),
        ],
        ids=["day", "session"],
    )
    def test_serialization_round_trip(self, timetable):
        """Airflow's own encoder and decoder give back an equal timetable."""
        from airflow.serialization.decoders import decode_timetable
        from airflow.serialization.encoders import encode_timetable

        encoded = encode_timetable(timetable)
        assert encoded["__type"] == f"nse_timetable.{type(timetable).__name__}"
        decoded = decode_timetable(encoded)
        assert decoded == timetable and decoded.summary == timetable.summary

    def test_summaries(self):
        """Summaries say the segment, time and zone."""
        assert TradingDayTimetable().summary == "NSE CM trading days at 18:30 Asia/Kolkata"
        assert TradingSessionTimetable().summary == (
            "NSE FO every 5 min, 09:15-15:30 Asia/Kolkata, trading days"
        )

    def test_plugin_registers_both(self):
        """The plugin registers both timetables under their import paths."""
        from airflow import plugins_manager

        registered = plugins_manager.get_timetables_plugins()
        for cls in (TradingDayTimetable, TradingSessionTimetable):
            assert registered[f"nse_timetable.{cls.__name__}"].__qualname__ == cls.__qualname__

    def test_dagbag_dags_use_the_timetable(self):
        """The end-of-day DAGs load with their trading-day timetables."""
        from airflow.dag_processing.dagbag import DagBag

        from tests.conftest import PROJECT_ROOT

        bag = DagBag(dag_folder=str(PROJECT_ROOT / "dags"))
        assert bag.import_errors == {}
        assert bag.dags["nse_cm_bhavcopy"].timetable == TradingDayTimetable()
        assert bag.dags["nse_fo_bhavcopy"].timetable == TradingDayTimetable(
            at=dt.time(19), segment="FO"
        )

    def test_backfill_enumerates_trading_days(self):
        """`airflow backfill create`'s own enumeration over a serialized DAG: one run a day."""
        from airflow.dag_processing.dagbag import DagBag
        from airflow.models.backfill import _get_info_list
        from airflow.serialization.serialized_objects import DagSerialization

        from tests.conftest import PROJECT_ROOT

        bag = DagBag(dag_folder=str(PROJECT_ROOT / "dags" / "nse_cm_bhavcopy.py"))
        dag = DagSerialization.from_dict(DagSerialization.to_dict(bag.dags["nse_cm_bhavcopy"]))
        infos = _get_info_list(
            from_date=ist(2025, 2, 1),
            to_date=ist(2025, 3, 7, 23, 59, 59),
            reverse=False,
            dag=dag,
        )
        days = [i.logical_date.in_timezone(IST).date() for i in infos]
        assert len(days) == len(set(days)) == 25
        assert days[0] == D(2025, 2, 1) and days[-1] == D(2025, 3, 7)
        assert D(2025, 2, 26) not in days
